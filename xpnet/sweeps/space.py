"""A sweep's search space: the ``--space FILE.toml`` of ``xpnet sweep create``, checked in full.

The file holds the fixed settings under ``[train]`` (read exactly as ``--config`` reads them,
by ``config.settings_from``) and a ``[sweep]`` table::

    [train]
    epochs = 5
    validation = 5000

    [sweep]
    sampler = "tpe"          # tpe (default), random or grid
    pruner = "median"        # median (default) or none

    [sweep.params]
    lr = {low = 0.01, high = 1.0, log = true}     # a range: floats, or integers for integer settings
    epochs = {low = 2, high = 8, step = 2}
    batch_size = [32, 64, 128]                     # choices
    hidden = ["512,256", "1024,1024"]              # sizes as in --hidden (or lists of integers)

Every parameter is a TrainConfig setting, each bound and choice a value its flag accepts; any
error is one line naming the file and the key. Nothing here imports Optuna: a parameter
suggests its value through the trial object it is given.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

from xpnet import config
from xpnet.errors import UserError, flag
from xpnet.settings import RANGES, SETTINGS, TrainConfig, parse_sizes

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "none")
# settings a sweep sets itself, per trial or per worker, with the reason given when a file sets them
NOT_SWEPT = {name: s.swept for name, s in SETTINGS.items() if s.swept}
FIXED_ONLY = tuple(name for name, s in SETTINGS.items() if s.swept and s.fixed)  # may be set under [train], not swept


@dataclass(frozen=True)
class Param:
    """One swept setting: a float or integer range (``low``..``high``, optionally ``log`` or
    with a ``step``), or a list of ``choices`` (sizes as strings such as "512,256")."""

    name: str
    kind: str  # "float", "int" or "choice"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def suggest(self, trial):
        """The trial's value for this parameter (an Optuna trial's suggest_* methods)."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid(self) -> list:
        """Every value, for the grid sampler (choices, or a range with a step; ints step 1)."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return list(range(self.low, self.high + 1, self.step or 1))
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [round(self.low + i * self.step, 12) for i in range(count)]

    def value(self, suggested):
        """A suggested value as its setting's value: sizes "512,256" -> (512, 256)."""
        if SETTINGS[self.name].kind is tuple:
            return parse_sizes(suggested, self.name)
        return float(suggested) if SETTINGS[self.name].kind is float else suggested


@dataclass
class Space:
    """The parameters, the fixed settings, the sampler and the pruner of a sweep."""

    params: list[Param]
    train: dict = field(default_factory=dict)  # fixed settings (data_dir absolute)
    sampler: str = "tpe"
    pruner: str = "median"

    def suggest(self, trial) -> dict:
        """The trial's settings: the fixed ones and the suggested ones (a swept ``hidden``
        replaces fixed ``layers``)."""
        values = {p.name: p.value(p.suggest(trial)) for p in self.params}
        out = self.train | values
        if "hidden" in values and "layers" not in values:
            out["layers"] = None
        return out

    def grid_size(self) -> int | None:
        """The number of points of the grid sampler's grid (None for the other samplers)."""
        return math.prod(len(p.grid()) for p in self.params) if self.sampler == "grid" else None

    def to_dict(self) -> dict:
        """A JSON-ready form, stored in the study for its workers (``from_dict`` reads it back)."""
        return {
            "params": [dataclasses.asdict(p) | {"choices": list(p.choices)} for p in self.params],
            "train": {k: list(v) if isinstance(v, tuple) else v for k, v in self.train.items()},
            "sampler": self.sampler,
            "pruner": self.pruner,
        }

    @staticmethod
    def from_dict(d: dict) -> Space:
        params = [Param(**(p | {"choices": tuple(p["choices"])})) for p in d["params"]]
        train = {k: tuple(v) if isinstance(v, list) else v for k, v in d["train"].items()}
        return Space(params, train, d["sampler"], d["pruner"])


def load(path: str) -> Space:
    """The search space of ``path``, checked in full."""
    origin = f"--space {path}"
    doc = config.load_toml(path, "--space")
    train = config.settings_from(doc, origin, beside=("sweep",))
    for name in train:
        if name in NOT_SWEPT and name not in FIXED_ONLY:
            raise UserError(f"{origin}: [train] {flag(name)[2:]}: set by the sweep ({NOT_SWEPT[name]})")
    sweep = doc.get("sweep")
    if not isinstance(sweep, dict) or not isinstance(sweep.get("params"), dict) or not sweep["params"]:
        raise UserError(
            f"{origin}: no [sweep.params] table: name at least one setting to search, e.g. lr = "
            f"{{low = 0.01, high = 1.0, log = true}}"
        )
    for key in sweep:
        if key not in ("params", "sampler", "pruner"):
            raise UserError(f"{origin}: unknown key {key!r} in [sweep]; expected params, sampler, pruner")
    sampler, pruner = (
        _choice(origin, sweep, key, allowed) for key, allowed in (("sampler", SAMPLERS), ("pruner", PRUNERS))
    )
    params = [_param(origin, key, value) for key, value in sweep["params"].items()]
    if len({p.name for p in params}) < len(params):
        raise UserError(f"{origin}: [sweep.params] names a setting twice (dashes and underscores are the same)")
    both = next((p.name for p in params if p.name in train), None)
    if both is not None:
        raise UserError(
            f"{origin}: {flag(both)[2:]} is both fixed under [train] and searched under [sweep.params]: keep one"
        )
    space = Space(params, _fixed(origin, train), sampler, pruner)
    if sampler == "grid":
        for p in params:
            if (p.kind == "float" and p.step is None) or p.log:
                raise UserError(
                    f"{origin}: sweep.params.{p.name}: the grid sampler needs choices or a range "
                    "with a step (and no log)"
                )
    return space


def _choice(origin: str, table: dict, key: str, allowed) -> str:
    value = table.get(key, allowed[0])
    if value not in allowed:
        raise UserError(f"{origin}: sweep.{key} = {config.toml_value(value):.60}: expected one of {', '.join(allowed)}")
    return value


def _fixed(origin: str, train: dict) -> dict:
    """The fixed settings, checked as a run would check them; data_dir made absolute (workers
    may start in other folders); a validation split required (it is the objective)."""
    cfg_values = dataclasses.asdict(TrainConfig()) | train
    try:
        TrainConfig(**cfg_values).check()
    except UserError as e:
        raise UserError(f"{origin}: [train]: {e}") from None
    if cfg_values["validation"] == 0 or cfg_values["epochs"] == 0:
        raise UserError(
            f"{origin}: [train] validation and epochs must be > 0: a trial is scored by its validation accuracy"
        )
    if train.get("data_dir"):
        train = train | {"data_dir": os.path.abspath(train["data_dir"])}
    return train


def _param(origin: str, key: str, value) -> Param:
    """One entry of [sweep.params], checked: a range table or a list of choices."""
    name, where = key.replace("-", "_"), f"{origin}: sweep.params.{key}"
    if name not in SETTINGS:
        raise UserError(
            f"{where}: not a setting; settings are {', '.join(flag(n)[2:] for n in SETTINGS if n not in NOT_SWEPT)}"
        )
    if name in NOT_SWEPT:
        raise UserError(f"{where}: not swept ({NOT_SWEPT[name]})")
    if isinstance(value, dict):
        param = _range(where, name, value)
    elif isinstance(value, list) and value:
        values = [_one_choice(f"{where}[{i}]", name, v) for i, v in enumerate(value)]
        if len(set(values)) < len(values):
            raise UserError(f"{where}: a choice is listed twice")
        param = Param(name, "choice", choices=tuple(values))
    else:
        raise UserError(
            f"{where}: expected a range {{low = ..., high = ...[, log = true][, step = ...]}} or "
            "a non-empty list of choices"
        )
    if name == "epochs" and min(param.choices or (param.low,)) < 1:
        raise UserError(f"{where}: every trial needs epochs >= 1 (it is scored by its validation accuracy)")
    return param


def _range(where: str, name: str, table: dict) -> Param:
    kind = SETTINGS[name].kind
    if kind not in (int, float):
        raise UserError(f"{where}: {flag(name)} is not a number: give a list of choices")
    unknown = next((k for k in table if k not in ("low", "high", "log", "step")), None)
    if unknown is not None or "low" not in table or "high" not in table:
        raise UserError(
            f"{where}: expected keys low, high and optionally log or step" + (f", not {unknown!r}" if unknown else "")
        )
    low, high = (
        config.setting(f"{where}.{k} = {config.toml_value(table[k]):.40}", table[k], kind, None)
        for k in ("low", "high")
    )
    if name in RANGES:
        for k, v in (("low", low), ("high", high)):
            RANGES[name].check(f"{where}.{k}", v)
    log, step = table.get("log", False), table.get("step")
    if not isinstance(log, bool):
        raise UserError(f"{where}.log: expected true or false")
    if step is not None:
        step = config.setting(f"{where}.step = {config.toml_value(step):.40}", step, kind, None)
        if not step > 0 or log:
            raise UserError(f"{where}.step {step}: must be > 0, and not given with log = true")
    if low > high:
        raise UserError(f"{where}: low {low} is above high {high}")
    if log and low <= 0:
        raise UserError(f"{where}: log = true needs low > 0 (low is {low})")
    return Param(name, "int" if kind is int else "float", low, high, log, step)


def _one_choice(where: str, name: str, value):
    """A choice as Optuna stores it (sizes as "512,256"), checked as its setting's value."""
    kind, choices = SETTINGS[name].kind, SETTINGS[name].choices
    if kind is tuple:
        if isinstance(value, str):
            value = list(parse_sizes(value, f"{where} ="))
        value = config.setting(f"{where} = {config.toml_value(value):.40}", value, tuple, None)
        if any(s < 1 for s in value):
            raise UserError(f"{where}: sizes must be >= 1")
        return ",".join(map(str, value))
    value = config.setting(f"{where} = {config.toml_value(value):.40}", value, kind, choices)
    if name in RANGES:
        RANGES[name].check(where, value)
    return value
