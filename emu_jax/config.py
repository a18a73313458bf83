"""Config files and command-line overrides (big_vision style).

`--config configs/x.py:arg` loads `get_config(arg)` from an ml_collections
config file; `--config.a.b=value` overrides one field. Unknown keys and values
of the wrong type are rejected with a message naming them, before anything
is built or compiled.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib.util
import pathlib
import sys
from typing import Any, Sequence

import ml_collections

PROJECT_CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"


def resolve_config_path(path: str) -> pathlib.Path:
    """A config file given as a path, or by name relative to the project's configs/."""
    candidates = [pathlib.Path(path)]
    name = path if path.endswith(".py") else path + ".py"
    candidates += [PROJECT_CONFIGS / name, PROJECT_CONFIGS / pathlib.Path(name).name]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"config file {path!r} not found (looked in the working directory and {PROJECT_CONFIGS})")


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Load `path.py[:arg]` by calling its `get_config(arg)` (arg None when absent)."""
    path, _, arg = spec.partition(":")
    file = resolve_config_path(path)
    module_name = f"_emu_config_{abs(hash(str(file)))}"
    spec_obj = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec_obj)
    sys.modules[module_name] = module
    spec_obj.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {file} has no get_config(arg=None) function")
    cfg = module.get_config(arg or None) if arg else module.get_config()
    if not isinstance(cfg, ml_collections.ConfigDict):
        raise ValueError(f"{file}: get_config must return an ml_collections.ConfigDict, got {type(cfg)}")
    return cfg


def _parse_value(key: str, text: str, current: Any) -> Any:
    """Parse `text` into the type of the field's current value."""
    if isinstance(current, bool):
        low = text.lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError(f"--config.{key}={text!r}: expected a bool (true/false)")
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if current is None:
            return text
        raise ValueError(
            f"--config.{key}={text!r}: expected {type(current).__name__}, could not parse the value"
        ) from None
    if current is None:
        return value
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(current, (list, tuple)) and isinstance(value, (list, tuple)):
        return type(current)(value)
    if isinstance(current, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    if type(value) is not type(current):
        raise ValueError(f"--config.{key}={text!r}: expected {type(current).__name__}, got {type(value).__name__}")
    return value


def _model_defaults(section: tuple[str, ...]) -> dict[str, Any]:
    """Every field of the model dataclass that `model.unet` / `model.vae` become, with its default, so
    an override can set an option the config file does not spell out; {} for other sections."""
    import dataclasses

    if section == ("model", "unet"):
        from emu_jax.models.unet_config import UNetConfig as schema
    elif section == ("model", "vae"):
        from emu_jax.models.autoencoder import VAEConfig as schema
    else:
        return {}
    return {f.name: f.default for f in dataclasses.fields(schema) if f.default is not dataclasses.MISSING}


def apply_override(cfg: ml_collections.ConfigDict, key: str, text: str) -> None:
    """Set dotted `key` to the parsed `text`; unknown keys raise naming the key."""
    node = cfg
    parts = key.split(".")
    for i, part in enumerate(parts):
        keys = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
        defaults = _model_defaults(tuple(parts[:i])) if i == len(parts) - 1 else {}
        if part not in keys and part in defaults and isinstance(node, ml_collections.ConfigDict):
            # A model option the config file left at its default: settable, typed by that default.
            with node.unlocked():
                node[part] = defaults[part]
            keys.append(part)
        if part not in keys:
            keys += [k for k in defaults if k not in keys]
            where = ".".join(parts[:i]) or "<root>"
            close = difflib.get_close_matches(part, keys, n=3)
            hint = f"; did you mean {close}?" if close else f"; known keys: {sorted(keys)}"
            raise ValueError(f"unknown config key {key!r}: {where} has no field {part!r}{hint}")
        if i < len(parts) - 1:
            node = node[part]
    last = parts[-1]
    current = node[last]
    if isinstance(current, ml_collections.ConfigDict):
        raise ValueError(f"--config.{key} names a whole section; override one of its fields")
    node[last] = _parse_value(key, text, current)


def add_config_argument(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument(
        "--config",
        default=default,
        required=default is None,
        help="config file with get_config(arg): PATH.py[:ARG] or a name under configs/. "
        "Override fields with --config.a.b=VALUE (unknown keys are an error).",
    )


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Separate `--config.a.b=v` / `--config.a.b v` overrides from the other arguments."""
    rest, overrides = [], []
    argv = list(argv)
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--config."):
            key, eq, val = a[len("--config.") :].partition("=")
            if not eq:
                if i + 1 >= len(argv):
                    raise ValueError(f"{a} needs a value")
                val = argv[i + 1]
                i += 1
            overrides.append((key, val))
        else:
            rest.append(a)
        i += 1
    return rest, overrides


def config_from_args(spec: str, overrides: Sequence[tuple[str, str]]) -> ml_collections.ConfigDict:
    cfg = load_config(spec)
    for key, val in overrides:
        apply_override(cfg, key, val)
    return cfg
