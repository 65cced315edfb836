"""Developer tools that are not shipped (pyproject.toml packages only app*): the demo model and example-style builders."""
