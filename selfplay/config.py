"""Typed configuration at the component boundary.

Hydra composes YAML from `conf/`; `typed(cls, cfg)` turns the result into frozen dataclasses,
checking every key and type on the way, so a typo in an override fails at start with the key's
full path and the keys that exist, not three hours into a run.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Mapping

from omegaconf import DictConfig, ListConfig, OmegaConf


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


def typed(cls: type, cfg: Any, path: str = "") -> Any:
    """Build dataclass `cls` from a mapping (or DictConfig), strictly."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    return _convert(cls, cfg, path or cls.__name__)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise ConfigError(f"{path}: must be set (got null)")
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(option, value, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {options}")
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: must be a list, got {value!r}")
        (item,) = typing.get_args(tp)[:1] or (Any,)
        items = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise ConfigError(f"{path}: must be {tp.__name__}, got {value!r} ({type(value).__name__})")
    return value


def _dataclass(cls: type, value: Any, path: str) -> Any:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: must be a mapping of {cls.__name__} fields, got {value!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in value if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{path}.{key}: unknown key{hint} (known: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], f"{path}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{path}.{name}: required, not set")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise  # a nested config's own error already names its full path
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{path}: {e}") from None


def as_dict(obj: Any) -> dict[str, Any]:
    """A typed config back to plain data (saved next to the output, hashed into the manifest)."""
    return dataclasses.asdict(obj)
