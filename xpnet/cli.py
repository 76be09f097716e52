"""Command line: ``xpnet train | evaluate | predict | export | ...``.

Parses flags, picks the backend once, and calls into train/data/checkpoint.
User errors become one line on stderr and exit code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

from xpnet import backends, config, population, presets, settings
from xpnet.engine import budget, evaluate, model
from xpnet.errors import Diverged, OutputFailed, Stopped, UserError, print_line
from xpnet.files import checkpoint, idx, images
from xpnet.files.atomic import writable_target
from xpnet.flags import device_flags, path_type, setting_flags
from xpnet.settings import SETTINGS, Range, TrainConfig
from xpnet.sweeps import cli as sweep_cli  # xpnet sweep: its flags (Optuna is imported only when it runs)
from xpnet.training import pick_backend, train_from
from xpnet.version import __version__

DEFAULTS = TrainConfig()


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Help that ends each flag's text with its default, unless the text says it or there is none
    (None, or an on/off switch). train's parser suppresses its defaults, so that only the flags
    given override presets and files; for its help they come from TrainConfig."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = getattr(DEFAULTS, action.dest, None) if action.default is argparse.SUPPRESS else action.default
        if default is None or isinstance(default, bool) or "default" in text:
            return text
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message):  # one line, no usage dump, the program named once ("xpnet: error: train: ...")
        command = self.prog.partition(" ")[2]
        raise UserError(f"{command}: {message}" if command else message)


def _add_json_flag(p) -> None:
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document on stdout instead of text, without the device line "
        "(errors stay one line on stderr)",
    )


def _add_data_dir(p) -> None:
    setting_flags(p, [SETTINGS["data_dir"]], data_dir=None)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="xpnet",
        description="Train multilayer perceptrons on MNIST-style IDX data, on any array-API backend.",
        epilog="Run 'xpnet COMMAND --help' for a command's flags. Without a COMMAND, xpnet prints this "
        "help on stderr and exits with status 2.",
    )
    p.add_argument("-V", "--version", action="version", version=f"xpnet {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors (also accepted after the command)")
    sub = p.add_subparsers(
        title="commands",
        dest="command",
        metavar="COMMAND",
        parser_class=_Parser,
        help="what to do; each has its own --help",
    )

    _add_train(sub)
    _add_model_commands(sub)
    _add_data_commands(sub)
    sweep_cli.add_parser(sub)
    for command in sub.choices.values():
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors"
        )
    return p


def _add_train(sub) -> None:
    t = sub.add_parser(
        "train", help="train a network and report its test accuracy", argument_default=argparse.SUPPRESS
    )  # only given flags appear: they win over presets/files
    rec = t.add_argument_group("recipe", "where the settings come from (flags given here win over all of them)")
    rec.add_argument("--preset", choices=sorted(presets.PRESETS), help="start from a named recipe (see: xpnet presets)")
    rec.add_argument(
        "--config", metavar="FILE.toml", help="read training flags from a TOML file (flags given here win)"
    )
    rec.add_argument("--resume", metavar="PATH", help="continue the training saved in this checkpoint")
    rec.add_argument("--print-config", action="store_true", help="print the resolved configuration as TOML and exit")
    rec.add_argument(
        "--population-seeds",
        type=int,
        metavar="N",
        help="train N networks of this recipe together, initial weights from --init-seed (or --seed) S to S+N-1, "
        "each saving and logging to its file with -initI before the suffix; prints their test accuracy's mean "
        "and spread",
    )
    for group in settings.GROUPS:
        setting_flags(t.add_argument_group(group), [s for s in SETTINGS.values() if s.group == group])


def _add_out_flag(p, default: str) -> None:
    """--out FILE for a command that draws one picture (checked by plots.check_output)."""
    p.add_argument(
        "--out",
        default=default,
        metavar="FILE.png",
        type=path_type("--out"),
        help="picture file; its extension picks the format: .png, .pdf, .svg, ...",
    )


def _add_model_flag(p) -> None:
    p.add_argument(
        "--model",
        required=True,
        metavar="PATH",
        type=path_type("--model", required=True),
        help="checkpoint (.npz) written by xpnet train --save",
    )


def _add_model_commands(sub) -> None:
    """evaluate, predict, presets, imagine: commands on a saved model."""
    e = sub.add_parser("evaluate", help="report a saved model's accuracy on the test set")
    _add_model_flag(e)
    device_flags(e)
    _add_data_dir(e)
    e.add_argument("--dtype", choices=backends.DTYPES, default=None, help="(default: the model's training dtype)")
    _add_json_flag(e)

    r = sub.add_parser("predict", help="classify PNG/PGM images with a saved model")
    _add_model_flag(r)
    r.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        type=path_type("IMAGE", required=True),
        help="PNG or PGM files; dark-on-light images are inverted",
    )
    device_flags(r, tf32=False)
    _add_json_flag(r)

    sub.add_parser("presets", help="list the named training recipes")
    m = sub.add_parser("summary", help="a saved model's layers, parameters and memory, and where it would compute")
    _add_model_flag(m)
    m.add_argument("--batch-size", type=int, metavar="N", help="batch of the memory estimate (default: the model's)")
    device_flags(m)
    sub.add_parser("versions", help="xpnet, Python, each array library with its devices, threads: for bug reports")

    x = sub.add_parser("export", help="write a saved model as an ONNX graph (for onnxruntime and other runtimes)")
    _add_model_flag(x)
    x.add_argument(
        "--onnx",
        required=True,
        metavar="PATH",
        type=path_type("--onnx", required=True),
        help="the .onnx file to write: opset 17 (Gemm, Relu/Sigmoid/Tanh, Softmax); input the pixels "
        "as floats in [0, 1], outputs probabilities and label (a regressor's: predictions)",
    )

    i = sub.add_parser("imagine", help="draw what a trained network thinks each digit looks like")
    _add_model_flag(i)
    i.add_argument("digits", nargs="*", type=int, metavar="DIGIT", help="classes to imagine (default: all)")
    _add_out_flag(i, "imagined.png")
    i.add_argument("--steps", type=int, default=300, help="gradient-ascent steps")
    device_flags(i, tf32=False)


def _add_data_commands(sub) -> None:
    """walkthrough, show, plot: looking at the data and at runs."""
    w = sub.add_parser("walkthrough", help="watch a fresh network learn one training image")
    w.add_argument("--index", type=int, default=0, help="which training image, from 0")
    w.add_argument("--iterations", type=int, default=250, help="training steps on the one image")
    w.add_argument("--every", type=int, default=10, help="print every K iterations")
    w.add_argument("--hidden", type=int, default=28, help="size of the one hidden layer")
    setting_flags(w, [SETTINGS["lr"], SETTINGS["seed"]], lr=0.25, seed=0)
    device_flags(w)
    _add_data_dir(w)

    sh = sub.add_parser("show", help="draw a grid of digits with their labels")
    sh.add_argument("--count", type=int, default=40, help="how many digits, from the first")
    sh.add_argument("--split", choices=("train", "test"), default="train", help="which images")
    _add_out_flag(sh, "digits.png")
    _add_data_dir(sh)

    pl = sub.add_parser("plot", help="redraw learning curves from a --log file")
    pl.add_argument(
        "--log",
        required=True,
        metavar="PATH",
        type=path_type("--log", required=True),
        help="JSON-lines file written by xpnet train --log",
    )
    _add_out_flag(pl, "curves.png")


def cmd_train(args, say) -> int:
    given = vars(args)
    count = given.pop("population_seeds", None)
    if count is None:
        train_from(given, say)
        return 0
    cfg = population.resolved(given)
    if given.get("print_config"):
        for line in config.to_toml(cfg):
            say(line)
        return 0
    _, _, results = population.train_from(population.seeded(cfg, count), say)
    say(population.summary(results))
    return 0


def _classifier(path: str, command: str) -> checkpoint.Saved:
    """The checkpoint at ``path`` (``--model``), refused in one line when it holds a regressor,
    which ``command`` (scoring or drawing classes) cannot use."""
    saved = checkpoint.load(path)
    if "regression" in saved.meta:
        raise UserError(
            f"--model {path}: a regressor (MLPRegressor); xpnet {command} needs a classifier: "
            "predict with xpnet.load(path).predict(X) in Python"
        )
    return saved


def cmd_evaluate(args, say) -> int:
    saved = _classifier(args.model, "evaluate")
    spec = saved.spec
    dataset = idx.load(args.data_dir, num_classes=spec.sizes[-1])
    if dataset.num_features != spec.sizes[0]:
        raise UserError(
            f"{args.model}: the model takes {spec.sizes[0]} inputs, the data has "
            f"{dataset.num_features} pixels per image"
        )
    be = pick_backend(args, say)
    params, dtype = saved.params_on(be, args.dtype)
    preds, correct, total = evaluate.scored(be, params, dataset.test, spec, dtype)
    rows = evaluate.per_class(dataset.test.labels, preds, spec.sizes[-1])
    if args.json:
        return _print_json(
            {
                "model": args.model,
                "data": dataset.source,
                "backend": be.name,
                "device": be.label,
                "dtype": dtype,
                "accuracy": correct / total,
                "correct": correct,
                "total": total,
                "per_class": rows,
            }
        )
    for line in evaluate.per_class_table(rows):
        say(line)
    say(evaluate.format_accuracy(correct, total))
    return 0


def _print_json(doc: dict) -> int:
    """--json: ``doc`` as the one line of stdout (the command's ``say`` is silent then)."""
    print_line(json.dumps(doc, allow_nan=False))
    return 0


def _json_number(x) -> float | None:
    """A float for JSON, which has no NaN or infinity: those (a model whose outputs overflow) as null."""
    x = float(x)
    return x if math.isfinite(x) else None


def _image_shape(path, spec, meta) -> tuple[int, int]:
    """The model's input image size: from its checkpoint, else a square of its input count."""
    shape = meta.get("config", {}).get("image_shape")
    if shape and len(shape) == 2 and int(np.prod(shape)) == spec.sizes[0]:
        return int(shape[0]), int(shape[1])
    side = int(round(spec.sizes[0] ** 0.5))
    if side * side != spec.sizes[0]:
        raise UserError(f"{path}: cannot tell the image size for {spec.sizes[0]} inputs")
    return side, side


def cmd_predict(args, say) -> int:
    saved = _classifier(args.model, "predict")
    spec, meta = saved.spec, saved.meta
    shape = _image_shape(args.model, spec, meta)
    inputs = np.stack([images.load_for_model(p, tuple(shape)) for p in args.images])
    be = pick_backend(args, say)
    params, dtype = saved.params_on(be)
    x = be.asarray(inputs.reshape(len(args.images), -1, 1), dtype)
    with be.ops.errors_ignored():  # a model whose outputs overflow: NaN probabilities, no warnings
        probs = be.to_host(model.forward(params, x, spec))[:, :, 0]
    # no class where the outputs are not finite (a model that overflows): argmax would say 0
    guesses = [(path, int(np.argmax(p)) if np.isfinite(p).all() else None, p) for path, p in zip(args.images, probs)]
    if args.json:
        return _print_json(
            {
                "model": args.model,
                "backend": be.name,
                "device": be.label,
                "predictions": [
                    {
                        "image": path,
                        "class": k,
                        "probability": None if k is None else _json_number(p[k]),
                        "probabilities": list(map(_json_number, p)),
                    }
                    for path, k, p in guesses
                ],
            }
        )
    for path, k, p in guesses:
        say(
            f"{path}: {k} ({100.0 * p[k]:.1f}%)"
            if k is not None
            else f"{path}: no prediction (the model's outputs are not finite)"
        )
    return 0


def cmd_export(args, say) -> int:
    from xpnet.files import onnx_export

    writable_target("--onnx", args.onnx, "model.onnx")
    spec, host_params, meta = checkpoint.load(args.model)
    onnx_export.save(args.onnx, spec, host_params, meta.get("classes"), flag="--onnx", regression="regression" in meta)
    say(f"wrote {args.onnx} ({spec.describe()}, ONNX opset {onnx_export.OPSET})")
    return 0


def cmd_presets(args, say) -> int:
    for name, preset in presets.PRESETS.items():
        say(f"{name:<15} {preset['about']}")
    return 0


def cmd_summary(args, say) -> int:
    saved = checkpoint.load(args.model)
    cfg = saved.meta.get("config", {})
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be >= 1")
    be = pick_backend(args, say)
    batch = args.batch_size or int(cfg.get("batch_size", 32))
    for line in budget.summary(saved.spec, saved.dtype, cfg.get("optimizer", "sgd"), batch, f"{be.name} on {be.label}"):
        say(line)
    return 0


def cmd_versions(args, say) -> int:
    from xpnet import environment

    for line in environment.lines():
        say(line)
    return 0


def cmd_imagine(args, say) -> int:
    from xpnet import explore
    from xpnet.files import plots

    out = plots.check_output("--out", args.out)
    saved = _classifier(args.model, "imagine")
    spec, meta = saved.spec, saved.meta
    classes = spec.sizes[-1]
    digits = args.digits or list(range(classes))
    bad = [d for d in digits if not 0 <= d < classes]
    if bad:
        raise UserError(f"DIGIT {bad[0]}: this model has classes 0..{classes - 1}")
    if args.steps < 1:
        raise UserError(f"--steps {args.steps}: must be >= 1")
    shape = _image_shape(args.model, spec, meta)
    be = pick_backend(args, say)
    params, _ = saved.params_on(be)
    imgs, probs = explore.imagine(params, spec, digits, shape, steps=args.steps)
    ok = 0
    for d, p in zip(digits, probs):
        guess = int(np.argmax(p))
        ok += guess == d
        say(
            f"imagined {d}: classified as {guess} ({100 * p[guess]:.1f}%), p({d}) = {100 * p[d]:.1f}%"
            + ("" if guess == d else "  <- not as intended")
        )
    say(f"{ok}/{len(digits)} imagined digits classified as intended")
    plots.digit_grid(
        imgs,
        [f"{d}: p={p[d]:.2f}" for d, p in zip(digits, probs)],
        out,
        cols=5,
        title="what the network imagines (each image's contrast stretched)",
        stretch=True,
    )
    say(f"wrote {out}")
    return 0


def cmd_walkthrough(args, say) -> int:
    from xpnet import explore

    values = vars(args)
    settings.check_ranges(
        values,
        {
            "iterations": Range(1),
            "every": Range(1),
            "hidden": Range(1),
            "lr": settings.RANGES["lr"],
            "seed": settings.RANGES["seed"],
        },
    )
    dataset = idx.load(args.data_dir)
    if not 0 <= args.index < len(dataset.train):
        raise UserError(f"--index {args.index}: must be between 0 and {len(dataset.train) - 1}")
    be = pick_backend(args, say)
    explore.walkthrough(
        be,
        dataset.train.images[args.index],
        int(dataset.train.labels[args.index]),
        dataset.num_classes,
        args.iterations,
        args.every,
        args.hidden,
        args.lr,
        args.seed,
        say,
    )
    return 0


def cmd_show(args, say) -> int:
    from xpnet.files import plots

    if args.count < 1:
        raise UserError(f"--count {args.count}: must be >= 1")
    out = plots.check_output("--out", args.out)
    split = getattr(idx.load(args.data_dir), args.split)
    n = min(args.count, len(split))
    imgs = split.images[:n]
    if imgs.ndim != 3:
        raise UserError(f"show: images of shape {imgs.shape[1:]} are not 2-D pictures")
    plots.digit_grid(imgs, [str(int(v)) for v in split.labels[:n]], out, title=f"first {n} {args.split} images")
    say(f"wrote {out}")
    return 0


def cmd_plot(args, say) -> int:
    from xpnet.files import plots

    out = plots.check_output("--out", args.out)
    history = plots.read_log(args.log)
    plots.learning_curves(history, out)
    say(f"wrote {out} ({len(history)} epochs)")
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "export": cmd_export,
    "presets": cmd_presets,
    "versions": cmd_versions,
    "summary": cmd_summary,
    "imagine": cmd_imagine,
    "walkthrough": cmd_walkthrough,
    "show": cmd_show,
    "plot": cmd_plot,
    "sweep": sweep_cli.cmd_sweep,
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not args.command:  # a bare ``xpnet``: the commands, and exit status 2 (nothing was run)
            parser.print_help(sys.stderr)
            return 2
        quiet = getattr(args, "json", False)  # --json: the document is stdout's only text (see _print_json)
        return COMMANDS[args.command](args, (lambda line: None) if quiet else print_line)
    except UserError as e:
        if isinstance(e, OutputFailed):
            _drop_stdout()
        if debug:
            raise
        print(f"xpnet: error: {e}", file=sys.stderr)
        return e.exit_code
    except Diverged as e:
        print(f"xpnet: {e}", file=sys.stderr)
        return e.exit_code
    except Stopped as e:
        return e.exit_code
    except KeyboardInterrupt:
        print("xpnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout has gone (xpnet ... | head -1): end quietly, as other tools do
        _drop_stdout()
        return 141  # 128 + SIGPIPE: the status a shell reports for a tool a closed pipe ended


def _drop_stdout() -> None:
    """Point standard output at the null device, so that nothing more (Python's own flush at
    exit included) is written where it failed."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (a captured stdout): nothing to redirect
        pass
