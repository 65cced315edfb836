"""Base models: offline tokenizer, tiny test models, family detection and loading."""

from app.engine.models.families import FAMILIES, Family, family_info

__all__ = ["FAMILIES", "Family", "family_info"]
