"""Recipes: YAML on top of the typed schema, `extends:` for inheritance, `key=value` overrides.

Order of precedence (later wins): schema defaults < extended recipes (base first) < the recipe < overrides.
Every layer is checked against the schema before it is merged, so an unknown key is reported with the
file it came from and the nearest valid key.
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vo3rl.config.schema import Recipe, check_semantics

EXTENDS_KEY = "extends"


class RecipeError(Exception):
    """A recipe that cannot be used; the message is one line meant for the user."""


def load_recipe(path: str | Path | None, overrides: Sequence[str] = (), schema: type = Recipe) -> Any:
    """Read `path` (may be None for defaults only), apply `overrides`, and return a validated `schema`
    instance with every `${…}` interpolation resolved. Raises RecipeError."""
    config = OmegaConf.structured(schema)
    layers = _read_recipe(Path(path), chain=()) if path is not None else []
    for origin, layer in layers:
        _check_keys(config, layer, origin, prefix="")
        try:
            config = OmegaConf.merge(config, layer)
            for key in _required_keys(layer):  # a merge never writes `???` over a value: mark them here
                OmegaConf.update(config, key, "???", merge=False)
        except OmegaConfBaseException as exc:
            raise RecipeError(f"{origin}: {_describe(exc)}") from None
    for key, value in _parse_overrides(overrides):
        _check_path(config, key)
        try:
            OmegaConf.update(config, key, value, merge=True)
        except OmegaConfBaseException as exc:
            raise RecipeError(f"command line: {_describe(exc)}") from None
    try:
        missing = sorted(OmegaConf.missing_keys(config))  # resolves every ${…}: a bad one raises here
    except OmegaConfBaseException as exc:
        raise RecipeError(_describe(exc)) from None
    if missing:
        raise RecipeError(f"missing required value: {', '.join(missing)} (set it in the recipe or as key=value)")
    try:
        recipe = OmegaConf.to_object(config)
    except OmegaConfBaseException as exc:
        raise RecipeError(_describe(exc)) from None
    problems = check_semantics(recipe) if isinstance(recipe, Recipe) else []
    if problems:
        raise RecipeError("; ".join(problems))
    return recipe


def to_yaml(recipe: Any) -> str:
    """The resolved recipe as YAML (what `vo3rl config` prints and runs save next to their outputs)."""
    return OmegaConf.to_yaml(OmegaConf.structured(recipe))


def _read_recipe(path: Path, chain: tuple[Path, ...]) -> list[tuple[str, dict]]:
    """The layers of one recipe file, its `extends` first, each tagged with its file name."""
    path = path.expanduser()
    if path.is_dir():
        raise RecipeError(f"{path} is a folder, not a recipe file (give a .yaml file, e.g. {path}/rl.yaml)")
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    resolved = path.resolve()
    if resolved in chain:
        raise RecipeError(f"{path}: 'extends' cycle: {' -> '.join(str(p) for p in (*chain, resolved))}")
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as exc:  # yaml's own errors carry no common base we can name
        raise RecipeError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of keys, got {type(data).__name__}")
    bases = data.pop(EXTENDS_KEY, None) or []
    if isinstance(bases, str):
        bases = [bases]
    layers = []
    for base in bases:
        layers.extend(_read_recipe(path.parent / base, (*chain, resolved)))
    layers.append((str(path), data))
    return layers


def _required_keys(layer: dict, prefix: str = "") -> list[str]:
    """Dotted keys a recipe layer sets to `???`: values the recipe requires the user to give."""
    keys = []
    for key, value in layer.items():
        if isinstance(value, dict):
            keys += _required_keys(value, f"{prefix}{key}.")
        elif value == "???":
            keys.append(f"{prefix}{key}")
    return keys


def _parse_overrides(overrides: Sequence[str]) -> list[tuple[str, Any]]:
    """(dotted key, value) pairs; values are read as YAML (`3` is an int, `[a, b]` a list, `${…}` kept)."""
    parsed = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or key.startswith(".") or key.endswith("."):
            raise RecipeError(f"override {item!r} is not of the form key.path=value")
        try:
            value = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={raw}"]), resolve=False)["v"]
        except Exception as exc:
            raise RecipeError(f"command line: cannot parse {item!r} ({str(exc).splitlines()[0]})") from None
        parsed.append((key, value))
    return parsed


def _check_path(config: DictConfig, key: str) -> None:
    """Walk `key` (e.g. `sft.stages.0.lr`) through the schema: every dataclass field must exist and every
    list index must be in range; free-form dicts accept anything below them."""
    node, walked = config, ""
    for part in key.split("."):
        if isinstance(node, ListConfig):
            if not part.isdigit() or int(part) >= len(node):
                raise RecipeError(f"command line: '{walked}{part}': {walked.rstrip('.')} has {len(node)} items")
            node = node[int(part)]
        elif isinstance(node, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(node)):
            if part not in node.keys():
                raise RecipeError(f"command line: unknown key '{walked}{part}'{_suggest(node, part, walked)}")
            node = node._get_node(part)
        else:
            return  # a free-form dict, a value, or None: OmegaConf's own typing takes over
        walked += f"{part}."


def _check_keys(node: DictConfig, layer: dict, origin: str, prefix: str) -> None:
    """Reject keys the schema does not declare, naming the nearest valid one."""
    node_type = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(node_type):
        return  # a free-form dict field: any key is allowed
    for key, value in layer.items():
        full = f"{prefix}{key}"
        if key not in node.keys():  # `in node` is False for a required value still unset
            raise RecipeError(f"{origin}: unknown key '{full}'{_suggest(node, str(key), prefix)}")
        child = node._get_node(key)
        if isinstance(value, dict) and isinstance(child, DictConfig) and not child._is_none():
            _check_keys(child, value, origin, prefix=f"{full}.")


def _suggest(node: DictConfig, key: str, prefix: str) -> str:
    close = difflib.get_close_matches(key, [str(k) for k in node.keys()], n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{prefix}{close[0]}'?)"
    return f" (valid keys here: {', '.join(str(k) for k in node.keys())})"


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's complaint with the line and column it points at (1-based), on one line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def _describe(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"'{key}': {message}" if key else message
