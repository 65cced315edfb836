"""Developer tools, not shipped (pyproject.toml packages app* only): the demo model and example-style builders."""
