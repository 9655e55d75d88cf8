"""Typed configuration at the component boundary.

Hydra composes YAML from `conf/`; `typed(cls, cfg)` turns the result into frozen dataclasses,
checking every key and type on the way, so a typo in an override fails at start with the key's
full path and the keys that exist, not three hours into a run. The YAML states only what differs
from the dataclass defaults; the effective value of every field of every verb is in
conf/REFERENCE.md, written by `python -m selfplay.config --reference`.
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


def _dataclass(cls: type, value: Any, path: str, base: Any = None) -> Any:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: must be a mapping of {cls.__name__} fields, got {value!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in value if k not in fields]
    if unknown:
        key = unknown[0]
        if key in getattr(cls, "dropped", ()):
            raise ConfigError(f"{path}.{key} is {cls.set_by}; remove it")
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{path}.{key}: unknown key{hint} (known: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        # A config whose default is a config of its own (the flywheel's strategy: no revisions)
        # takes a partial mapping as changes to that default, key by key, as Hydra merges YAML.
        default = getattr(base, name) if base is not None else f.default
        if name in value and dataclasses.is_dataclass(default) and isinstance(value[name], Mapping):
            kwargs[name] = _dataclass(type(default), value[name], f"{path}.{name}", default)
        elif name in value:
            kwargs[name] = _convert(hints[name], value[name], f"{path}.{name}")
        elif base is not None:
            kwargs[name] = default
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


def variant(cls: type, name: str, drop: tuple[str, ...] = (), set_by: str = "", **fields: tuple[Any, Any]) -> type:
    """`cls` less the fields in `drop`, as a frozen dataclass `name`: the part of a config that a
    bigger one leaves to its user (the flywheel sets each round's model, data and output itself;
    `set_by` says so when a user sets one). `fields` give a field another type and default:
    name=(type, default). It has no checks of its own: the whole `cls` is built, and checked,
    where it is used."""
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if f.name in drop or not f.init:
            continue
        if f.name in fields:
            tp, default = fields[f.name]
            specs.append((f.name, tp, dataclasses.field(default=default)))
        else:
            specs.append((f.name, hints[f.name], dataclasses.field(default=f.default, default_factory=f.default_factory)))
    made = dataclasses.make_dataclass(name, specs, frozen=True, kw_only=True)
    made.__doc__ = f"{cls.__name__} without {', '.join(drop)}." if drop else f"{cls.__name__} with other defaults."
    made.variant_of, made.dropped, made.set_by = cls, drop, set_by  # variant_of: where its fields are documented
    return made


# ------------------------------------------------------------------------------ the flat reference

REFERENCE = "conf/REFERENCE.md"
REFERENCE_COMMAND = "python -m selfplay.config --reference"


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass `cls` (of the class a variant comes from)."""
    import ast
    import inspect
    import textwrap

    source = getattr(cls, "variant_of", cls)
    body = ast.parse(textwrap.dedent(inspect.getsource(source))).body[0].body
    return {node.target.id: " ".join(doc.value.value.split()) for node, doc in zip(body, body[1:])
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
            and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)}


def reference() -> str:
    """Every field of every verb's typed config, with the value the verb runs with when given no
    override (conf/<verb>.yaml and its default presets over the dataclass defaults) and its doc."""
    from omegaconf import OmegaConf

    from selfplay import cli

    out = ["# Configuration reference", "",
           f"Generated by `{REFERENCE_COMMAND}` from the typed configs and conf/; do not edit by hand",
           "(tests/selfplay/test_conf.py fails when it is out of date). Each verb's fields with the value",
           "`python -m selfplay.<verb>` runs with when given no override (conf/<verb>.yaml and its default",
           "presets over the dataclass defaults; `???` = required) and what each means. Any of them can be",
           "overridden on the command line as `key=value`.", ""]
    for verb in cli.CONFIGS:
        cls = cli.config_class(verb)
        composed = OmegaConf.to_container(cli.compose(verb, []), resolve=False)
        composed.pop("hydra", None)
        out += [f"## {verb}", "", f"`python -m selfplay.{verb}`: conf/{verb}.yaml onto "
                f"`{cls.__module__}.{cls.__name__}`.", "", "| key | value | type | doc |", "|---|---|---|---|"]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in (f"`{key}`", value, kind, doc)) + " |"
                for key, value, kind, doc in _rows(cls, composed, None, "")]
        out.append("")
    return "\n".join(out)


_ABSENT = object()


def _rows(cls: type, composed: Mapping | None, base: Any, prefix: str) -> list[tuple[str, str, str, str]]:
    hints, docs, rows = typing.get_type_hints(cls), field_docs(cls), []
    for f in (f for f in dataclasses.fields(cls) if f.init):
        given = composed.get(f.name, _ABSENT) if isinstance(composed, Mapping) else _ABSENT
        if base is not None:
            default = getattr(base, f.name)
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING and given is _ABSENT:
            default = f.default_factory()
        else:
            default = "???"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            if f.name in docs:  # the node's own doc: what the flywheel does with it, say
                rows.append((prefix + f.name, "", _type_name(tp), docs[f.name]))
            rows += _rows(tp, given if isinstance(given, Mapping) else None,
                          default if dataclasses.is_dataclass(default) else None, f"{prefix}{f.name}.")
            continue
        value = default if given is _ABSENT else given
        if value != "???" and value is not None:
            value = _convert(tp, value, prefix + f.name)
        rows.append((prefix + f.name, f"`{_show(value)}`", _type_name(tp), docs.get(f.name, "")))
    return rows


def _show(value: Any) -> str:
    import json

    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    elif isinstance(value, (list, tuple)):
        value = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]
    return value if isinstance(value, str) and value else json.dumps(value)


def _type_name(tp: Any) -> str:
    import re

    return re.sub(r"\b(?:[a-z_]\w*\.)+(\w+)", r"\1", getattr(tp, "__name__", None) if isinstance(tp, type) else str(tp))


if __name__ == "__main__":
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m selfplay.config")
    parser.add_argument("--reference", action="store_true", help=f"write {REFERENCE}: every field of every verb")
    if parser.parse_args().reference:
        path = Path(__file__).resolve().parents[1] / REFERENCE
        path.write_text(reference())
        print(f"wrote {path}")
    else:
        parser.print_help()
