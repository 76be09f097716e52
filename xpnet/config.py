"""A training run's settings: defaults, checks, presets and TOML files, and what they imply
(the architecture and the step's recipe)."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import types
import typing
from dataclasses import asdict, dataclass
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from . import augment, checkpoint, model, optim, presets
from .errors import UserError
from .step import Recipe


class Range(typing.NamedTuple):
    """The finite numbers a numeric flag takes: lo <= value (lo < value if ``above``) <= hi."""

    lo: float
    hi: float = math.inf
    above: bool = False

    def check(self, flag: str, value) -> None:
        """UserError naming ``flag`` unless ``value`` is in the range (ints are always finite)."""
        finite = isinstance(value, int) or math.isfinite(value)
        if not (finite and (value > self.lo if self.above else value >= self.lo) and value <= self.hi):
            bound = f"between {self.lo} and {self.hi}" if self.hi < math.inf else f"{'>' if self.above else '>='} {self.lo}"
            raise UserError(f"{flag} {value}: must be a number {bound}")


# train's numeric flags and their ranges; walkthrough shares lr's and seed's
RANGES = {"lr": Range(0, above=True), "warmup": Range(0), "momentum": Range(0, 0.999), "weight_decay": Range(0),
          "dropout": Range(0, 0.95), "max_norm": Range(0), "label_smoothing": Range(0, 0.5), "early_stop": Range(0),
          "batch_size": Range(1), "epochs": Range(0), "l2": Range(0), "seed": Range(0), "validation": Range(0),
          "threads": Range(0, 4096)}


def flag(name: str) -> str:
    """The command-line flag of a setting: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def check_ranges(values, ranges: dict[str, Range]) -> None:
    """Check each named value (a mapping such as ``vars(args)``) against its Range."""
    for name, allowed in ranges.items():
        allowed.check(flag(name), values[name])


def nonempty(name: str, value, required: bool = False):
    """``value``, unless it is the empty string (a path or name left blank): then a UserError
    naming ``name``, a flag such as ``--save`` or an argument such as ``IMAGE``."""
    if value == "":
        raise UserError(f"{name} '': must not be empty" + ("" if required else " (leave the flag out for its default)"))
    return value


def check_nonempty(values, names) -> None:
    """Refuse an empty string (a path or name left blank) for any of ``names`` in ``values``."""
    for name in names:
        nonempty(flag(name), values.get(name))


# the settings that name a file or folder: a checkpoint stores them absolute (TrainConfig.to_checkpoint)
PATHS = ("data_dir", "save", "log", "plots")


@dataclass
class TrainConfig:
    """Every setting of a training run (the CLI flags of ``xpnet train``)."""

    layers: tuple[int, ...] | None = None  # full sizes, input first; checked against the data
    hidden: tuple[int, ...] = (512, 256)  # hidden sizes when layers is None
    activation: str = "relu"
    output: str = "softmax"
    init: str = "auto"
    lr: float = 0.2
    lr_schedule: str = "cosine"
    warmup: float = 0.0  # epochs of linear warm-up
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0  # adamw's decoupled decay
    dropout: float = 0.0  # on hidden layers
    max_norm: float = 0.0  # 0: off
    label_smoothing: float = 0.0
    augment: str = "none"
    early_stop: int = 0  # patience in epochs on validation accuracy; 0: off
    batch_size: int = 32
    epochs: int = 20
    l2: float = 0.0
    seed: int = 0
    validation: int = 10000
    dtype: str = "float32"
    backend: str | None = None
    device: str = "auto"
    tf32: bool = False  # TensorFloat-32 matrix multiplies on CUDA GPUs (CuPy, torch, JAX)
    cuda_graph: bool = True  # on CuPy, replay a chunk's full-batch steps as one captured CUDA graph
    threads: int = 0  # CPU threads for the BLAS/torch pools; 0: follow the free cores
    data_dir: str | None = None
    save: str | None = None
    log: str | None = None  # append one JSON object per epoch
    plots: str | None = None  # folder for learning curves, confusion matrix, mistakes
    quiet: bool = False

    def check(self) -> None:
        """Reject values no run can use, naming the flag."""
        values = asdict(self)
        check_ranges(values, RANGES)
        check_nonempty(values, [name for name, kind in SETTINGS.items() if kind is str])
        for name in ("layers", "hidden"):
            sizes = getattr(self, name)
            if sizes is not None and any(s < 1 for s in sizes):
                raise UserError(f"{flag(name)} {','.join(map(str, sizes))}: sizes must be >= 1")
        if self.layers is not None and len(self.layers) < 2:
            raise UserError(f"--layers {','.join(map(str, self.layers)) or repr('')}: need at least an input and an output size")
        if self.lr_schedule not in optim.SCHEDULES:
            raise UserError(f"--lr-schedule {self.lr_schedule}: expected one of {', '.join(optim.SCHEDULES)}")
        if self.optimizer not in optim.OPTIMIZERS:
            raise UserError(f"--optimizer {self.optimizer}: expected one of {', '.join(optim.OPTIMIZERS)}")
        if self.augment not in augment.KINDS:
            raise UserError(f"--augment {self.augment}: expected one of {', '.join(augment.KINDS)}")
        if self.early_stop and not self.validation:
            raise UserError("--early-stop needs a validation split (--validation N > 0)")
        if self.dtype not in ("float32", "float64"):
            raise UserError(f"--dtype {self.dtype}: expected float32 or float64")
        self._check_paths()

    def _check_paths(self) -> None:
        if self.log and (Path(self.log).is_dir() or not Path(self.log).parent.is_dir()):
            raise UserError(f"--log {self.log}: not a file in an existing folder")
        if self.plots and not Path(self.plots).is_dir():
            raise UserError(f"--plots {self.plots}: not a directory")
        if self.plots and importlib.util.find_spec("matplotlib") is None:
            raise UserError(f"--plots {self.plots}: pictures need matplotlib: pip install 'xpnet[plots]'")
        if self.save:
            target = Path(self.save)
            if target.is_dir():
                raise UserError(f"--save {self.save}: is a directory; give a file name such as model.npz")
            if not target.parent.is_dir():
                raise UserError(f"--save {self.save}: folder {target.parent} does not exist")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers) if self.layers else None
        d["hidden"] = list(self.hidden)
        return d

    def to_checkpoint(self) -> dict:
        """The settings as a checkpoint stores them: ``to_dict`` with the PATHS made absolute, so
        that the run resumes from any folder (``resolve`` still reads older, relative ones)."""
        return self.to_dict() | {name: os.path.abspath(path) for name in PATHS if (path := getattr(self, name))}


def resolve_spec(cfg: TrainConfig, num_features: int, num_classes: int) -> model.Spec:
    """The architecture from the config and the data's input and class counts."""
    if cfg.layers:  # sizes >= 1, at least two: checked by TrainConfig.check
        sizes = tuple(cfg.layers)
        if sizes[0] != num_features:
            raise UserError(f"--layers: input size {sizes[0]} does not match the data's {num_features} pixels per image")
        if sizes[-1] != num_classes:
            raise UserError(f"--layers: output size {sizes[-1]} does not match the data's {num_classes} classes")
    else:
        sizes = (num_features, *cfg.hidden, num_classes)
    return model.Spec(sizes, cfg.activation, cfg.output, cfg.init)


def recipe(cfg: TrainConfig, n_train: int, image_shape) -> Recipe:
    """The step's recipe: the optimiser and its settings, dropout, max-norm, augmentation."""
    if cfg.augment != "none" and len(image_shape) != 2:
        raise UserError(f"--augment {cfg.augment}: needs 2-D images, the data's are {tuple(image_shape)}")
    hyper = optim.Hyper(cfg.optimizer, cfg.momentum, weight_decay=cfg.weight_decay, l2=cfg.l2, n_train=n_train)
    return Recipe(hyper, cfg.dropout, cfg.max_norm, cfg.augment, tuple(image_shape), cfg.seed)


def _toml_type(hint) -> type:
    """A field's annotation as the type its TOML value must have: ``str | None`` -> str, ``tuple[int, ...]`` -> tuple."""
    if isinstance(hint, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


# every setting of a config file: TrainConfig's fields and their types, described for errors
SETTINGS: dict[str, type] = {name: _toml_type(hint) for name, hint in typing.get_type_hints(TrainConfig).items()}
KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", tuple: "a list of integers"}


def load_toml(path: str, flag_name: str = "--config") -> dict:
    """The TOML document of ``path``; a UserError naming ``flag_name`` and the file if it cannot be read."""
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


def from_toml(path: str, parser) -> dict:
    """Settings from a TOML file: its ``[train]`` table, or its top level when it has none.

    Every key must be a setting (``batch-size`` or ``batch_size``) with a value of its type and,
    where its flag in ``parser`` has choices, one of them; anything else is a UserError naming the file.
    """
    return settings_from(load_toml(path), f"--config {path}", parser)


def settings_from(doc: dict, origin: str, parser, beside: tuple[str, ...] = ()) -> dict:
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
    choices = {a.dest: a.choices for a in parser._actions if a.choices}
    out = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in SETTINGS:
            raise UserError(f"{origin}: unknown {'table' if isinstance(value, dict) else 'key'} {key!r} {where}; "
                            f"settings are {', '.join(flag(n)[2:] for n in SETTINGS)}")
        if name in out:
            raise UserError(f"{origin}: {key!r} {where} sets {flag(name)[2:]} a second time")
        out[name] = setting(f"{origin}: {key} = {toml_value(value):.60}", value, SETTINGS[name], choices.get(name))
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


def resolve(args, parser):
    """TrainConfig from, in rising priority: defaults, --preset, --config, the --resume checkpoint,
    and flags on the command line. Returns (config, loaded checkpoint or None)."""
    given = vars(args)
    check_nonempty(given, ("config", "resume"))
    values = dataclasses.asdict(TrainConfig())
    if "preset" in given:
        values.update(presets.get(given["preset"]))
    if "config" in given:
        values.update(from_toml(given["config"], parser))
    resume = None
    if "resume" in given:
        resume = checkpoint.load(given["resume"])
        saved = resume[2].get("config", {})
        values.update({k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items() if k in SETTINGS})
        values["save"] = given["resume"]
        stored = {k: saved[k] for k in PATHS if saved.get(k) and k not in given and k != "save"}  # save: the resumed file
        _check_stored_paths(stored, given["resume"])
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
            where = f"stored in {source}" + ("" if Path(value).is_absolute() else ", relative to the folder the run was started in")
            what = "folder" if name != "log" else f"folder {folder}"
            raise UserError(f"{flag(name)} {value} ({where}): {what} not found; give {flag(name)} to point at it")


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
