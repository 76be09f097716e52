"""The ``xpnet sweep`` command line: create, run, show, best (the work is in ``xpnet.sweeps.study``,
which imports Optuna only when one of them runs)."""

from __future__ import annotations

import argparse

from xpnet.flags import device_flags, path_type


def _study_flags(p) -> None:
    p.add_argument(
        "--study", required=True, metavar="NAME", type=path_type("--study", required=True), help="the study's name"
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        type=path_type("--storage"),
        help="where the study lives: sqlite:///FILE, postgresql+psycopg://USER@HOST[:PORT]/DB or journal:FILE "
        "(default: sqlite:///xpnet-sweeps.db, in the current folder)",
    )


def add_parser(sub) -> None:
    """``xpnet sweep`` and its four commands, under the top-level parser's commands ``sub``."""
    s = sub.add_parser("sweep", help="hyperparameter search on Optuna: create, run, show, best")
    cmds = s.add_subparsers(
        title="sweep commands",
        dest="sweep_command",
        metavar="SWEEP_COMMAND",
        required=True,
        help="what to do with a study; each has its own --help",
    )
    c = cmds.add_parser("create", help="make a study from a search-space TOML file")
    _study_flags(c)
    c.add_argument(
        "--space",
        required=True,
        metavar="FILE.toml",
        type=path_type("--space", required=True),
        help="[sweep.params] to search, [sweep] sampler and pruner, fixed settings under [train] as in --config",
    )

    r = cmds.add_parser(
        "run", help="run trials of a study in worker processes (run it on each machine or GPU to add workers)"
    )
    _study_flags(r)
    r.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="stop when the study holds N finished trials, counting every worker's (default: no limit)",
    )
    r.add_argument("--timeout", type=float, metavar="S", help="start no trial after S seconds (default: no limit)")
    r.add_argument("--workers", type=int, default=1, metavar="J", help="worker processes to start here")
    r.add_argument(
        "--population",
        type=int,
        default=1,
        metavar="K",
        help="each worker asks for K trials at once and trains those that share the network's shape, batch "
        "and data together, one step for all (their batch order shared, each its own initial weights)",
    )
    r.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="CPU threads of each worker; 0: the usable cores divided among --workers (one worker: the free cores)",
    )
    device_flags(r, tf32=False, backend=None, device=None)  # None: the space's [train] settings, else by device
    r.add_argument(
        "--out",
        default="xpnet-sweeps",
        metavar="DIR",
        type=path_type("--out"),
        help="each trial's checkpoint and log go to DIR/STUDY/trial-N/",
    )
    r.add_argument(
        "--heartbeat",
        type=int,
        default=10,
        metavar="S",
        help="seconds between a running trial's heartbeats; one silent for 3 beats is failed and retried",
    )
    r.add_argument("--spawned", action="store_true", help=argparse.SUPPRESS)  # a worker started by --workers J

    sh = cmds.add_parser("show", help="list a study's trials and the best one")
    _study_flags(sh)
    sh.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of the table")

    b = cmds.add_parser("best", help="evaluate the best trial's model on the test set, and save it")
    _study_flags(b)
    b.add_argument(
        "--save", metavar="PATH", type=path_type("--save"), help="copy the best trial's checkpoint (.npz) here"
    )
    device_flags(b, tf32=False)
    for command in cmds.choices.values():
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors"
        )


def cmd_sweep(args, say) -> int:
    """``xpnet sweep COMMAND``: the work, in ``xpnet.sweeps.study``."""
    from xpnet.sweeps import study

    if args.sweep_command == "create":
        study.create(args.study, args.space, args.storage, say)
        return 0
    return {"run": study.run, "show": study.show, "best": study.best}[args.sweep_command](args, say)
