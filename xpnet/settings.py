"""Every setting of a training run (``TrainConfig``), with its checks: the leaf that the
command line, config files, checkpoints, sweeps and the Python API all read."""

from __future__ import annotations

import importlib.util
import math
import os
import types
import typing
from dataclasses import asdict, dataclass
from pathlib import Path

from . import augment, optim
from .errors import UserError


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



def _toml_type(hint) -> type:
    """A field's annotation as the type its TOML value must have: ``str | None`` -> str, ``tuple[int, ...]`` -> tuple."""
    if isinstance(hint, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


# every setting: TrainConfig's fields and their types
SETTINGS: dict[str, type] = {name: _toml_type(hint) for name, hint in typing.get_type_hints(TrainConfig).items()}
