"""The shelf: a library of adapter files from several folders, stacks of weighted adapters, presets.

- ``stack.py``: ``StackEntry`` / ``Stack`` — the ordered, toggled, weighted adapters (shared contract)
- ``library.py``: ``Library`` — list (header-only), find, import (sanitised, duplicate-checked), export, remove
- ``presets.py``: named stack presets as JSON under ``user_data_dir()/presets``
- ``bake.py``: ``bake(stack, out, mode="concat"|"svd", rank=…)`` — merge a stack into one adapter file
- ``stack_file.py``: house-style stacks as shareable ``NAME.stack.json`` files in any shelf folder
- ``versions.py``: which shelf file a recorded entry means (hash, then name) and whether its version changed
"""
