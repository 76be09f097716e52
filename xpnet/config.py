"""A training run's settings: defaults, checks, presets and TOML files, and what they imply
(the architecture and the step's recipe)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
from dataclasses import asdict, dataclass
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from . import augment, checkpoint, model, optim, presets
from .errors import UserError
from .step import Recipe


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
    data_dir: str | None = None
    save: str | None = None
    log: str | None = None  # append one JSON object per epoch
    plots: str | None = None  # folder for learning curves, confusion matrix, mistakes
    quiet: bool = False

    def check(self) -> None:
        """Reject values no run can use, naming the flag."""
        self._check_numbers()
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

    def _check_numbers(self) -> None:
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"--lr {self.lr}: must be a positive number")
        for flag, value, lo, hi in (("--dropout", self.dropout, 0.0, 0.95), ("--label-smoothing", self.label_smoothing, 0.0, 0.5),
                                    ("--momentum", self.momentum, 0.0, 0.999)):
            if not lo <= value <= hi:
                raise UserError(f"{flag} {value}: must be between {lo} and {hi}")
        for flag, value in (("--warmup", self.warmup), ("--weight-decay", self.weight_decay), ("--max-norm", self.max_norm),
                            ("--l2", self.l2)):
            if not (value >= 0 and math.isfinite(value)):
                raise UserError(f"{flag} {value}: must be >= 0")
        for flag, value, lo in (("--early-stop", self.early_stop, 0), ("--batch-size", self.batch_size, 1),
                                ("--epochs", self.epochs, 0), ("--validation", self.validation, 0), ("--seed", self.seed, 0)):
            if value < lo:
                raise UserError(f"{flag} {value}: must be >= {lo}")

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


def resolve_spec(cfg: TrainConfig, num_features: int, num_classes: int) -> model.Spec:
    """The architecture from the config and the data's input and class counts."""
    if cfg.layers:
        sizes = tuple(cfg.layers)
        if len(sizes) < 2:
            raise UserError(f"--layers {','.join(map(str, sizes))}: need at least an input and an output size")
        if sizes[0] != num_features:
            raise UserError(f"--layers: input size {sizes[0]} does not match the data's {num_features} pixels per image")
        if sizes[-1] != num_classes:
            raise UserError(f"--layers: output size {sizes[-1]} does not match the data's {num_classes} classes")
    else:
        sizes = (num_features, *cfg.hidden, num_classes)
    if any(s < 1 for s in sizes):
        raise UserError(f"--layers {','.join(map(str, sizes))}: sizes must be >= 1")
    return model.Spec(sizes, cfg.activation, cfg.output, cfg.init)


def recipe(cfg: TrainConfig, n_train: int, image_shape) -> Recipe:
    """The step's recipe: the optimiser and its settings, dropout, max-norm, augmentation."""
    if cfg.augment != "none" and len(image_shape) != 2:
        raise UserError(f"--augment {cfg.augment}: needs 2-D images, the data's are {tuple(image_shape)}")
    hyper = optim.Hyper(cfg.optimizer, cfg.momentum, weight_decay=cfg.weight_decay, l2=cfg.l2, n_train=n_train)
    return Recipe(hyper, cfg.dropout, cfg.max_norm, cfg.augment, tuple(image_shape), cfg.seed)


CONFIG_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def from_toml(path: str, parser) -> dict:
    """Training fields from a TOML file, each checked as its flag would be by ``parser``."""
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"--config {path}: file not found") from None
    except OSError as e:
        raise UserError(f"--config {path}: cannot read ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"--config {path}: not valid TOML ({e})") from None
    table = table.get("train", table)
    actions = {a.dest: a for a in parser._actions}
    out = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in CONFIG_FIELDS or name not in actions:
            raise UserError(f"--config {path}: unknown setting {key!r}")
        out[name] = _parse_setting(path, key, value, actions[name])
    return out


def _parse_setting(path: str, key: str, value, action):
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise UserError(f"--config {path}: {key} must be true or false")
        return value
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    try:
        parsed = action.type(text) if action.type else text
    except ValueError:
        raise UserError(f"--config {path}: {key} = {value!r} is not a valid value") from None
    if action.choices and parsed not in action.choices:
        raise UserError(f"--config {path}: {key} = {value!r}: expected one of {', '.join(map(str, action.choices))}")
    return parsed


def resolve(args, parser):
    """TrainConfig from, in rising priority: defaults, --preset, --config, the --resume checkpoint,
    and flags on the command line. Returns (config, loaded checkpoint or None)."""
    given = vars(args)
    values = dataclasses.asdict(TrainConfig())
    if "preset" in given:
        values.update(presets.get(given["preset"]))
    if "config" in given:
        values.update(from_toml(given["config"], parser))
    resume = None
    if "resume" in given:
        resume = checkpoint.load(given["resume"])
        saved = resume[2].get("config", {})
        values.update({k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items() if k in CONFIG_FIELDS})
        values["save"] = given["resume"]
    values.update({k: v for k, v in given.items() if k in CONFIG_FIELDS})
    for key in ("layers", "hidden"):
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    if "hidden" in given and "layers" not in given:
        values["layers"] = None  # --hidden on the command line replaces sizes from presets or files
    cfg = TrainConfig(**values)
    cfg.check()
    return cfg, resume


def to_toml(cfg: TrainConfig) -> list[str]:
    """The resolved settings as the lines of a ``[train]`` TOML table."""
    lines = ["[train]"]
    for key, value in cfg.to_dict().items():
        if value is not None:
            lines.append(f"{key.replace('_', '-')} = {_toml_value(value)}")
    return lines


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(str, v)) + "]"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)
