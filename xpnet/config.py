"""A training run's settings: defaults, checks, presets and TOML files, and what they imply
(the architecture and the step's recipe)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from xpnet import presets
from xpnet.engine import model, optim
from xpnet.engine.step import StepOptions
from xpnet.errors import UserError, flag, named
from xpnet.files import checkpoint
from xpnet.settings import PATHS, SETTINGS, TrainConfig, check_nonempty


def resolve_spec(cfg: TrainConfig, num_features: int, num_classes: int) -> model.Spec:
    """The architecture from the config and the data's input and class counts."""
    if cfg.layers:  # sizes >= 1, at least two: checked by TrainConfig.check
        sizes = tuple(cfg.layers)
        if sizes[0] != num_features:
            raise UserError(
                f"{named('layers')}: input size {sizes[0]} does not match the data's {num_features} pixels per image"
            )
        if sizes[-1] != num_classes:
            raise UserError(
                f"{named('layers')}: output size {sizes[-1]} does not match the data's {num_classes} classes"
            )
    else:
        sizes = (num_features, *cfg.hidden, num_classes)
    return model.Spec(sizes, cfg.activation, cfg.output, cfg.init)


def recipe(cfg: TrainConfig, n_train: int, image_shape) -> StepOptions:
    """The step's recipe: the optimiser and its settings, dropout, max-norm, augmentation, label smoothing."""
    if cfg.augment != "none" and len(image_shape) != 2:
        raise UserError(f"{named('augment')} {cfg.augment}: needs 2-D images, the data's are {tuple(image_shape)}")
    optimizer = optim.Optimizer(cfg.optimizer, cfg.momentum, weight_decay=cfg.weight_decay, l2=cfg.l2, n_train=n_train)
    return StepOptions(
        optimizer,
        cfg.dropout,
        cfg.max_norm,
        cfg.augment,
        tuple(image_shape),
        cfg.seed,
        label_smoothing=cfg.label_smoothing,
    )


KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", tuple: "a list of integers"}


def load_toml(path: str, flag_name: str | None = None) -> dict:
    """The TOML document of ``path``; a UserError naming ``flag_name`` (default: the config
    setting, as the caller says it) and the file if it cannot be read."""
    flag_name = flag_name or named("config")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"{flag_name} {path}: file not found") from None
    except OSError as e:
        raise UserError(f"{flag_name} {path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise UserError(f"{flag_name} {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{flag_name} {path}: not valid TOML ({e})") from None


def from_toml(path: str) -> dict:
    """Settings from a TOML file: its ``[train]`` table, or its top level when it has none.

    Every key must be a setting (``batch-size`` or ``batch_size``) with a value of its type and,
    where it has choices, one of them; anything else is a UserError naming the file.
    """
    return settings_from(load_toml(path), f"{named('config')} {path}")


def settings_from(doc: dict, origin: str, beside: tuple[str, ...] = ()) -> dict:
    """The settings of a TOML document (see ``from_toml``); errors start with ``origin``, such
    as ``--config FILE``. The top-level tables named in ``beside`` (a sweep's ``[sweep]``) are
    left to the caller."""
    table, where = {k: v for k, v in doc.items() if k not in beside}, "at the top level"
    if "train" in doc:
        table, where = doc["train"], "in [train]"
        if not isinstance(table, dict):
            raise UserError(f"{origin}: train = {table!r:.60}: expected a [train] table of settings")
        stray = next((key for key in doc if key != "train" and key not in beside), None)
        if stray is not None:
            raise UserError(f"{origin}: {stray!r} beside [train]: only the [train] table is read; move it in")
    out = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in SETTINGS:
            raise UserError(
                f"{origin}: unknown {'table' if isinstance(value, dict) else 'key'} {key!r} {where}; "
                f"settings are {', '.join(flag(n)[2:] for n in SETTINGS)}"
            )
        if name in out:
            raise UserError(f"{origin}: {key!r} {where} sets {flag(name)[2:]} a second time")
        out[name] = setting(
            f"{origin}: {key} = {toml_value(value):.60}", value, SETTINGS[name].kind, SETTINGS[name].choices
        )
    if out.get("layers") is not None and out.get("hidden") is not None:
        raise UserError(
            f"{origin}: layers and hidden {where} both given: give one (layers: every size, input first; "
            "hidden: the hidden sizes only)"
        )
    return out


def _is_a(value, kind: type) -> bool:
    """Whether a TOML value has a setting's type: a bool is no number, an int is a float, a tuple a list of ints."""
    if kind is tuple:
        return isinstance(value, list) and all(_is_a(v, int) for v in value)
    if isinstance(value, bool) != (kind is bool):
        return False
    return isinstance(value, (int, float) if kind is float else kind)


def setting(where: str, value, kind: type, choices):
    """A TOML value as its setting's type, or a UserError starting with ``where``."""
    if not _is_a(value, kind):
        raise UserError(f"{where}: expected {KINDS[kind]}")
    if kind is float:
        try:
            value = float(value)
        except OverflowError:
            raise UserError(f"{where}: too large") from None
    value = tuple(value) if kind is tuple else value
    if choices and value not in choices:
        raise UserError(f"{where}: expected one of {', '.join(map(str, choices))}")
    return value


def value_of(name: str, value):
    """A Python value (a keyword of ``xpnet.train`` or a parameter of ``MLPClassifier``) as
    setting ``name``'s value, of its type as a config file's value is: NumPy scalars as Python
    numbers, sizes as a tuple (a lone int: one size). A UserError naming ``name=value``
    otherwise. Its choices and range are TrainConfig.check's."""
    kind = SETTINGS[name].kind
    value = value.item() if isinstance(value, (np.integer, np.floating, np.bool_)) else value
    if name == "dtype" and not isinstance(value, str):  # np.float32, np.dtype("float64")
        try:
            value = np.dtype(value).name
        except TypeError:
            pass
    if kind is tuple:
        value = [value] if isinstance(value, int) and not isinstance(value, bool) else value
        if isinstance(value, (tuple, list)):
            value = [v.item() if isinstance(v, np.integer) else v for v in value]
    return setting(f"{name}={value!r}", value, kind, None)


def resolve(given: dict):
    """TrainConfig from, in rising priority: defaults, ``preset``, ``config`` (a TOML file), the
    ``resume`` checkpoint, and the settings ``given`` (the flags on the command line, or
    ``xpnet.train``'s keywords). Returns (config, loaded checkpoint or None)."""
    check_nonempty(given, ("config", "resume"))
    values = dataclasses.asdict(TrainConfig())
    if "preset" in given:
        if given["preset"] not in presets.PRESETS:
            raise UserError(
                f"{named('preset')} {given['preset']!r}: no such preset; presets are {', '.join(presets.PRESETS)}"
            )
        values.update(presets.get(given["preset"]))
    if "config" in given:
        values.update(from_toml(given["config"]))
    resume = None
    if "resume" in given:
        resume = checkpoint.load(given["resume"])
        saved = resume.meta.get("config", {})
        values.update({k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items() if k in SETTINGS})
        values["save"] = given["resume"]
        stored = {
            k: saved[k] for k in PATHS if saved.get(k) and k not in given and k != "save"
        }  # save: the resumed file
        _check_stored_paths(stored, given["resume"])
    if given.get("hidden") is not None and given.get("layers") is not None:
        raise UserError(
            f"{named('hidden')} and {named('layers')} both given: give one (layers: every size, input "
            "first; hidden: the hidden sizes only)"
        )
    values.update({k: v for k, v in given.items() if k in SETTINGS})
    for key in ("layers", "hidden"):
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    if "hidden" in given and "layers" not in given:
        values["layers"] = None  # --hidden on the command line replaces sizes from presets or files
    cfg = TrainConfig(**values)
    cfg.check()
    return cfg, resume


def _check_stored_paths(paths: dict, source: str) -> None:
    """The paths a checkpoint's settings hold (no flag overriding them) lead to existing folders
    (for --log: the file's); else a UserError saying where the path came from. Older
    checkpoints hold paths relative to the folder their run was started in."""
    for name, value in paths.items():
        folder = Path(value).parent if name == "log" else Path(value)  # a log file is created if need be
        if not folder.is_dir():
            where = f"stored in {source}" + (
                "" if Path(value).is_absolute() else ", relative to the folder the run was started in"
            )
            what = "folder" if name != "log" else f"folder {folder}"
            raise UserError(f"{named(name)} {value} ({where}): {what} not found; give {named(name)} to point at it")


def to_toml(cfg: TrainConfig) -> list[str]:
    """The resolved settings as the lines of a ``[train]`` TOML table."""
    lines = ["[train]"]
    for key, value in cfg.to_dict().items():
        if value is not None:
            lines.append(f"{key.replace('_', '-')} = {toml_value(value)}")
    return lines


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(toml_value, v)) + "]"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)
