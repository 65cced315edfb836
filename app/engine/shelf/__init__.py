"""The shelf: a library of adapter files from several folders, stacks of weighted adapters, presets."""
