"""Building a Config from plain data (YAML + key=value overrides), with type checks that name the key and its origin.

A recipe file sets any subset of the fields; the dataclass defaults fill the rest. Command-line overrides are
``key=value`` or ``section.key=value`` (values parsed as YAML). An unknown key or a value of the wrong type is a
``ConfigError`` that names the key and where it came from (file or command line).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from hftl.config.schema import MODALITY_SECTIONS, Config, modality_sections
from hftl.errors import ConfigError


def _check_value(value: Any, annotation: Any, key: str, origin: str) -> Any:
    """Return value converted to annotation (int -> float only), or raise ConfigError naming key and origin."""
    kind = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if kind in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check_value(value, arg, key, origin)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key} ({origin}): {value!r} matches none of {annotation}")
    if kind is Literal:
        if isinstance(value, bool) and not any(isinstance(a, bool) for a in args):
            # YAML 1.1 reads no/off/false (and yes/on/true) as booleans: `mixed_precision: no` means the option "no".
            spellings = {False: ("no", "off", "false"), True: ("yes", "on", "true")}[value]
            value = next((a for a in args if isinstance(a, str) and a.lower() in spellings), value)
        if value not in args:
            raise ConfigError(f"{key} ({origin}): {value!r} is not one of {list(args)}")
        return value
    if kind is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} ({origin}): expected a list, got {type(value).__name__} {value!r}")
        return [_check_value(v, args[0], f"{key}[{i}]", origin) for i, v in enumerate(value)]
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:  # YAML 1.1 reads '5e-4' (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if annotation in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{key} ({origin}): expected {annotation.__name__}, got bool {value!r}")
    if annotation in (int, float, str, bool):
        if not isinstance(value, annotation):
            raise ConfigError(f"{key} ({origin}): expected {annotation.__name__}, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{key} ({origin}): unsupported annotation {annotation}")


_SECRET_KEY = re.compile(r"token|secret|password|passwd|api_?key", re.IGNORECASE)


def _keys(schema: type) -> dict[str, Any]:
    """Every key the dataclass schema accepts, with its type: its fields, where a field holds the modalities'
    sections (``Config.sections``) each registered modality's section instead, under the modality's name."""
    hints = typing.get_type_hints(schema)
    keys: dict[str, Any] = {}
    for f in dataclasses.fields(schema):
        if f.metadata.get(MODALITY_SECTIONS):
            keys.update(modality_sections())
        else:
            keys[f.name] = hints[f.name]
    return keys


def _merge(raw: dict[str, Any], schema: type, prefix: str, origin: str, into: dict[str, Any]) -> None:
    """Check raw against the dataclass schema and merge it into `into` (a nested dict of plain values)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'config'} ({origin}): expected a mapping, got {type(raw).__name__}")
    hints = _keys(schema)
    known = set(hints)
    for name, value in raw.items():
        key = f"{prefix}{name}"
        if name not in known:
            if _SECRET_KEY.search(name):
                # Say where without echoing the value: it may be a real credential.
                raise ConfigError(
                    f"unknown key '{key}': secrets never go into a config (it is saved with the run); "
                    "the Hub token comes from HF_TOKEN or `hf auth login`"
                )
            close = ", ".join(sorted(known))
            raise ConfigError(f"unknown key '{key}' ({origin}); known keys here: {close}")
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            _merge(value, annotation, f"{key}.", origin, into.setdefault(name, {}))
        else:
            into[name] = _check_value(value, annotation, key, origin)


def _build(schema: type, values: dict[str, Any]) -> Any:
    hints = _keys(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    kwargs: dict[str, Any] = {}
    sections: dict[str, Any] = {}
    for name, value in values.items():
        built = _build(hints[name], value) if dataclasses.is_dataclass(hints[name]) else value
        (kwargs if name in fields else sections)[name] = built
    if sections:  # the modalities' sections go into the field that holds them
        kwargs[next(n for n, f in fields.items() if f.metadata.get(MODALITY_SECTIONS))] = sections
    return schema(**kwargs)


def from_mapping(schema: type, raw: Any, origin: str, prefix: str = "") -> Any:
    """Any dataclass schema built from plain data with the checks a run config gets (e.g. a compare spec).

    Raises:
        ConfigError: unknown key, wrong type or invalid value; the message names the key (after prefix) and origin.
    """
    values: dict[str, Any] = {}
    _merge(raw, schema, prefix, origin, values)
    try:
        return _build(schema, values)
    except ConfigError as err:
        raise ConfigError(f"{err} ({origin})") from err


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split 'section.key=value' into (['section', 'key'], parsed YAML value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} (command line): expected key=value or section.key=value")
    key, _, raw = text.partition("=")
    if not key.strip():
        raise ConfigError(f"override {text!r} (command line): empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r} (command line): value is not valid YAML: {err}") from err
    return key.strip().split("."), value


def read_yaml(path: Path, what: str) -> Any:
    """The YAML in ``path`` ({} when empty). Raises ConfigError naming ``what`` is missing, or the file when it is not YAML."""
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a recipe YAML (optional), apply key=value overrides, and validate everything.

    Raises:
        ConfigError: unknown key, wrong type or invalid value; the message names the key and the file.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        raw = read_yaml(path, "config file")
        _merge(raw, Config, "", str(path), values)
    for text in overrides:
        keys, value = parse_override(text)
        nested: dict[str, Any] = {}
        cursor = nested
        for k in keys[:-1]:
            cursor = cursor.setdefault(k, {})
        cursor[keys[-1]] = value
        _merge(nested, Config, "", f"command line {text!r}", values)
    try:
        return _build(Config, values)
    except ConfigError as err:
        where = f" ({path})" if path is not None else ""
        raise ConfigError(f"{err}{where}") from err


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the fully resolved config (every field, defaults included) as YAML."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def describe(schema: type = Config, prefix: str = "") -> list[tuple[str, str, Any]]:
    """(key, help, default) for every leaf field: the documentation of the schema."""
    rows = []
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for name, annotation in _keys(schema).items():
        if dataclasses.is_dataclass(annotation):
            rows.extend(describe(annotation, f"{prefix}{name}."))
        else:
            f = fields[name]
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((f"{prefix}{name}", f.metadata.get("help", ""), default))
    return rows
