"""Typed recipes: the schema (dataclasses), YAML loading with `extends`, and `key=value` overrides."""
from vo3rl.config.loader import RecipeError, load_recipe, to_yaml
from vo3rl.config.schema import Recipe

__all__ = ["Recipe", "RecipeError", "load_recipe", "to_yaml"]
