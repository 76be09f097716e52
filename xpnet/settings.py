"""Every setting of a training run, declared once: ``TrainConfig``'s fields, each with its
``Setting`` (help text, ``xpnet train --help`` group, choices, range, where it applies). The
leaf that the command line's flags, config files, checkpoints, sweeps and the Python API are
all made from; the choices come from the modules that implement them."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from xpnet.backends import BACKENDS, DTYPES
from xpnet.engine import augment, model, optim
from xpnet.engine.data import CLASS_WEIGHTS
from xpnet.engine.model import sizes_text
from xpnet.errors import UserError, flag, named
from xpnet.files.atomic import writable_target

__all__ = [
    "GROUPS",
    "PATHS",
    "RANGES",
    "SETTINGS",
    "Range",
    "Setting",
    "TrainConfig",
    "check_nonempty",
    "check_ranges",
    "flag",
    "named",
    "nonempty",
    "parse_sizes",
    "sizes_text",
]


class Range(typing.NamedTuple):
    """The finite numbers a numeric setting takes: lo <= value (lo < value if ``above``) <= hi."""

    lo: float
    hi: float = math.inf
    above: bool = False

    def check(self, label: str, value) -> None:
        """UserError naming ``label`` unless ``value`` is in the range (ints are always finite)."""
        finite = isinstance(value, int) or math.isfinite(value)
        if not (finite and (value > self.lo if self.above else value >= self.lo) and value <= self.hi):
            bound = (
                f"between {self.lo} and {self.hi}" if self.hi < math.inf else f"{'>' if self.above else '>='} {self.lo}"
            )
            raise UserError(f"{label} {value}: must be a number {bound}")


@dataclass(frozen=True)
class Setting:
    """One training setting: what it is and where it applies. Every setting is a flag of
    ``xpnet train`` (an on/off one for a bool), a key of ``--config`` files and sweep spaces'
    ``[train]``, a keyword of ``xpnet.train`` and stored in checkpoints (``config``)."""

    help: str
    group: str  # its group in xpnet train --help: one of GROUPS
    choices: tuple = ()  # the values it takes, from the module that implements them
    range: Range | None = None
    metavar: str | None = None
    api: bool = True  # a parameter of MLPClassifier of the same name and meaning
    swept: str = ""  # why a sweep sets it itself ("" : a sweep may search it)
    fixed: bool = False  # with ``swept``: may still be fixed under a space's [train]
    path: bool = False  # names a file or folder (stored absolute in checkpoints)
    off_flag: bool = False  # a bool that is on by default: its flag is --no-NAME
    # filled in from the TrainConfig field
    name: str = ""
    kind: type = object  # bool, int, float, str or tuple (of ints)
    default: typing.Any = None

    def flag(self) -> str:
        """The flag that sets it: ``--batch-size``, or ``--no-cuda-graph`` for an on-by-default switch."""
        return "--no-" + self.name.replace("_", "-") if self.off_flag else flag(self.name)


def _setting(default, help: str, group: str, **about):
    return dataclasses.field(default=default, metadata={"setting": Setting(help, group, **about)})


GROUPS = ("network", "optimiser", "regularisation", "data", "outputs", "device")  # train --help's, in order
_DEVICE_METAVAR = "auto|cpu|cuda|cuda:N"


@dataclass
class TrainConfig:
    """Every setting of a training run (the flags of ``xpnet train``), in --help's order."""

    # network
    layers: tuple[int, ...] | None = _setting(
        None,
        "all layer sizes, input first, e.g. 784,100,10 (checked against the data)",
        "network",
        metavar="SIZES",
        api=False,
    )
    hidden: tuple[int, ...] = _setting(
        (512, 256),
        "hidden sizes only, e.g. 100,30 or '' for none; input and output come from the data",
        "network",
        metavar="SIZES",
    )
    activation: str = _setting("relu", "activation of the hidden layers", "network", choices=model.ACTIVATIONS)
    output: str = _setting(
        "softmax",
        "softmax + cross-entropy, sigmoid + quadratic cost, or identity + squared error (least squares)",
        "network",
        choices=model.OUTPUTS,
    )
    init: str = _setting(
        "auto",
        "weight initialisation (default auto: he for relu, xavier otherwise)",
        "network",
        choices=("auto",) + model.INITS,
    )
    # optimiser
    optimizer: str = _setting("sgd", "update rule", "optimiser", choices=optim.OPTIMIZERS)
    lr: float = _setting(0.2, "learning rate, > 0", "optimiser", range=Range(0, above=True))
    lr_schedule: str = _setting(
        "cosine", "learning-rate schedule, evaluated every step", "optimiser", choices=optim.SCHEDULES
    )
    warmup: float = _setting(0.0, "epochs of linear learning-rate warm-up", "optimiser", range=Range(0))
    momentum: float = _setting(
        0.9, "momentum coefficient of momentum and nesterov, 0 to 0.999", "optimiser", range=Range(0, 0.999)
    )
    weight_decay: float = _setting(0.0, "adamw's decoupled weight decay", "optimiser", range=Range(0))
    batch_size: int = _setting(32, "training images per step", "optimiser", range=Range(1))
    epochs: int = _setting(20, "passes over the training images", "optimiser", range=Range(0))
    seed: int = _setting(
        0,
        "seed of the one host random generator (initial weights, batch order), >= 0",
        "optimiser",
        range=Range(0),
        api=False,
        swept="each trial's seed is its trial number",
    )
    init_seed: int | None = _setting(
        None,
        "seed of the initial weights alone, >= 0; --seed then orders the batches (and keys dropout and "
        "augmentation), so runs that differ only here see the same batches (default: --seed draws both)",
        "optimiser",
        range=Range(0),
        metavar="N",
        api=False,
        swept="each trial's seed is its trial number",
        fixed=True,
    )
    # regularisation
    l2: float = _setting(
        0.0, "L2 weight decay lambda: each step scales W by 1 - lr*lambda/n", "regularisation", range=Range(0)
    )
    dropout: float = _setting(0.0, "dropout rate on hidden layers, 0 to 0.95", "regularisation", range=Range(0, 0.95))
    max_norm: float = _setting(0.0, "cap on each unit's incoming weight norm; 0: off", "regularisation", range=Range(0))
    label_smoothing: float = _setting(
        0.0, "mass moved from the label to all classes evenly, 0 to 0.5", "regularisation", range=Range(0, 0.5)
    )
    augment: str = _setting(
        "none", "on-device augmentation of training batches", "regularisation", choices=augment.KINDS
    )
    early_stop: int = _setting(
        0,
        "stop when validation accuracy has not improved for N epochs; keep the best; 0: off",
        "regularisation",
        range=Range(0),
        metavar="N",
    )
    early_stop_on: str = _setting(
        "accuracy",
        "what --early-stop watches and keeps the best epoch by: the validation accuracy or the validation loss",
        "regularisation",
        choices=("accuracy", "loss"),
    )
    # data
    data_dir: str | None = _setting(
        None,
        "folder with the four IDX files (default: the bundled MNIST)",
        "data",
        metavar="DIR",
        api=False,
        swept="every trial trains on the same data",
        fixed=True,
        path=True,
    )
    validation: int = _setting(
        10000,
        "hold out the last N training images for validation; 0: none",
        "data",
        range=Range(0),
        api=False,
        swept="every trial is scored on the same validation split",
        fixed=True,
    )
    class_weight: str = _setting(
        "none",
        "weigh each training image by its class; balanced: class c weighs n / (classes * n_c), "
        "n_c its images among the n trained on",
        "data",
        choices=CLASS_WEIGHTS,
        api=False,
    )
    dtype: str = _setting("float32", "floating-point type of the parameters and the arithmetic", "data", choices=DTYPES)
    # outputs
    save: str | None = _setting(
        None,
        "write the model (and resumable training state) to this .npz file",
        "outputs",
        metavar="PATH",
        api=False,
        swept="each trial's checkpoint is written to its own folder",
        path=True,
    )
    log: str | None = _setting(
        None,
        "append one JSON object per epoch to this file",
        "outputs",
        metavar="PATH",
        api=False,
        swept="each trial's log is written to its own folder",
        path=True,
    )
    plots: str | None = _setting(
        None,
        "after training, draw curves.png, confusion.png and mistakes.png here",
        "outputs",
        metavar="DIR",
        api=False,
        swept="a sweep draws no pictures",
        path=True,
    )
    quiet: bool = _setting(False, "no progress bar", "outputs", api=False, swept="a sweep prints one line per trial")
    # device
    backend: str | None = _setting(
        None,
        "array library (default: cupy when --device picks a GPU, else numpy)",
        "device",
        choices=BACKENDS,
        api=False,
        swept="the backend is chosen per worker (xpnet sweep run --backend)",
        fixed=True,
    )
    device: str = _setting(
        "auto",
        "where to compute (default auto: a CUDA GPU when usable, else the CPU)",
        "device",
        metavar=_DEVICE_METAVAR,
        api=False,
        swept="the device is chosen per worker (xpnet sweep run --device)",
        fixed=True,
    )
    threads: int = _setting(
        0,
        "CPU threads for NumPy's BLAS and PyTorch (default 0: the cores free of other work, re-checked every 0.2 s; "
        "fix it for bit-identical reruns: sums differ in the last bits between thread counts)",
        "device",
        range=Range(0, 4096),
        metavar="N",
        swept="threads are set per worker (xpnet sweep run --threads)",
    )
    tf32: bool = _setting(
        False,
        "allow TensorFloat-32 matrix multiplies on a CUDA GPU: faster, about 3 significant "
        "digits (default: off, full float32)",
        "device",
        swept="the device is chosen per worker",
        fixed=True,
    )
    cuda_graph: bool = _setting(
        True,
        "on CuPy, run every step eagerly instead of replaying each chunk of full-batch "
        "steps as one captured CUDA graph (default: graphs on)",
        "device",
        off_flag=True,
        swept="the device is chosen per worker",
        fixed=True,
    )

    def check(self) -> None:
        """Reject values no run can use, naming the setting in the caller's words (``named``)."""
        values = dataclasses.asdict(self)
        for name, setting in SETTINGS.items():
            value = values[name]
            if setting.choices and value is not None and value not in setting.choices:
                raise UserError(f"{named(name)} {value}: expected one of {', '.join(setting.choices)}")
        check_ranges(values, RANGES)
        check_nonempty(values, [name for name, setting in SETTINGS.items() if setting.kind is str])
        for name in ("layers", "hidden"):
            sizes = getattr(self, name)
            if sizes is not None and any(s < 1 for s in sizes):
                raise UserError(f"{named(name)} {sizes_text(sizes)}: sizes must be >= 1")
        if self.layers is not None and len(self.layers) < 2:
            raise UserError(
                f"{named('layers')} {sizes_text(self.layers) or repr('')}: need at least an input and an output size"
            )
        if self.early_stop and not self.validation:
            raise UserError(f"{named('early_stop')} needs a validation split ({named('validation')} N > 0)")
        self._check_paths()

    def _check_paths(self) -> None:
        if self.log:
            writable_target(named("log"), self.log, "log.jsonl")
        if self.plots and not Path(self.plots).is_dir():
            raise UserError(f"{named('plots')} {self.plots}: not a directory")
        if self.plots and importlib.util.find_spec("matplotlib") is None:
            raise UserError(f"{named('plots')} {self.plots}: pictures need matplotlib: pip install 'xpnet[plots]'")
        if self.save:
            writable_target(named("save"), self.save, "model.npz")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers) if self.layers else None
        d["hidden"] = list(self.hidden)
        return d

    def to_checkpoint(self) -> dict:
        """The settings as a checkpoint stores them: ``to_dict`` with the PATHS made absolute, so
        that the run resumes from any folder (``resolve`` still reads older, relative ones)."""
        return self.to_dict() | {name: os.path.abspath(path) for name in PATHS if (path := getattr(self, name))}


def _kind(hint) -> type:
    """A field's annotation as the type its value has: ``str | None`` -> str, ``tuple[int, ...]`` -> tuple."""
    if isinstance(hint, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


_HINTS = typing.get_type_hints(TrainConfig)
# every setting by name, in TrainConfig's order
SETTINGS: dict[str, Setting] = {
    f.name: dataclasses.replace(f.metadata["setting"], name=f.name, kind=_kind(_HINTS[f.name]), default=f.default)
    for f in dataclasses.fields(TrainConfig)
}
RANGES = {name: s.range for name, s in SETTINGS.items() if s.range is not None}
PATHS = tuple(name for name, s in SETTINGS.items() if s.path)


def check_ranges(values, ranges: dict[str, Range]) -> None:
    """Check each named value (a mapping such as ``vars(args)``) against its Range."""
    for name, allowed in ranges.items():
        if values[name] is not None:  # an optional setting left out
            allowed.check(named(name), values[name])


def nonempty(name: str, value, required: bool = False):
    """``value``, unless it is the empty string (a path or name left blank): then a UserError
    naming ``name``, a flag such as ``--save`` or an argument such as ``IMAGE``."""
    if value == "":
        raise UserError(f"{name} '': must not be empty" + ("" if required else " (leave the flag out for its default)"))
    return value


def check_nonempty(values, names) -> None:
    """Refuse an empty string (a path or name left blank) for any of ``names`` in ``values``."""
    for name in names:
        nonempty(named(name), values.get(name))


def parse_sizes(text: str, label: str) -> tuple[int, ...]:
    """Layer sizes as a flag or a sweep's choice writes them: "784,100,10" -> (784, 100, 10),
    "" -> (); a UserError starting with ``label`` when they are not integers (sizes >= 1 is
    TrainConfig.check's)."""
    try:
        return tuple(int(t) for t in text.split(",")) if text.strip() else ()
    except ValueError:
        raise UserError(f"{label} {text!r}: expected comma-separated integers such as 784,100,10") from None
