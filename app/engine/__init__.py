"""The headless engine: models, training, adapters, shelf and generation.

Nothing here imports Qt (a test enforces it). Long entry points look like
``fn(config, *, on_event, cancel)``: they report progress as events from ``app.engine.events`` through
one callback and stop soon after ``cancel.is_set()`` becomes true.
"""
