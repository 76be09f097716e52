"""Command line: ``xpnet train | evaluate | predict``.

Parses flags, picks the backend once, and calls into train/data/checkpoint.
User errors become one line on stderr and exit code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from . import __version__, backend as backends, checkpoint, data, images, model, optim
from .errors import UserError
from .train import Diverged, TrainConfig, format_accuracy, predictions, train

DEFAULTS = TrainConfig()


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise UserError(f"{self.prog}: {message}")


def _int_list(flag):
    def parse(text: str) -> tuple[int, ...]:
        text = text.strip()
        if not text:
            return ()
        try:
            sizes = tuple(int(t) for t in text.split(","))
        except ValueError:
            raise UserError(f"{flag} {text!r}: expected comma-separated integers such as 784,100,10") from None
        if any(s < 1 for s in sizes):
            raise UserError(f"{flag} {text!r}: sizes must be >= 1")
        return sizes

    return parse


def _add_device_flags(p):
    p.add_argument("--backend", choices=backends.BACKENDS, default=None,
                   help="array library (default: cupy when --device picks a GPU, else numpy)")
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N",
                   help="where to compute (default auto: a CUDA GPU when usable, else the CPU)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder with the four IDX files (default: the bundled MNIST)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="xpnet", description="Train multilayer perceptrons on MNIST-style IDX data, on any array-API backend.")
    p.add_argument("--version", action="version", version=f"xpnet {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a network and report its test accuracy")
    _add_device_flags(t)
    t.add_argument("--layers", type=_int_list("--layers"), default=None, metavar="SIZES",
                   help="all layer sizes, input first, e.g. 784,100,10 (checked against the data)")
    t.add_argument("--hidden", type=_int_list("--hidden"), default=DEFAULTS.hidden, metavar="SIZES",
                   help=f"hidden sizes only; input and output come from the data (default {','.join(map(str, DEFAULTS.hidden))})")
    t.add_argument("--activation", choices=("sigmoid", "tanh", "relu"), default=DEFAULTS.activation)
    t.add_argument("--output", choices=("softmax", "sigmoid"), default=DEFAULTS.output,
                   help="softmax + cross-entropy, or sigmoid + quadratic cost (default softmax)")
    t.add_argument("--init", choices=("auto",) + model.INITS, default=DEFAULTS.init,
                   help="weight initialisation (auto: he for relu, xavier otherwise)")
    t.add_argument("--lr", type=float, default=DEFAULTS.lr, help=f"learning rate (default {DEFAULTS.lr})")
    t.add_argument("--lr-schedule", choices=optim.SCHEDULES, default=DEFAULTS.lr_schedule,
                   help=f"per-epoch learning-rate schedule (default {DEFAULTS.lr_schedule})")
    t.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help=f"(default {DEFAULTS.batch_size})")
    t.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help=f"(default {DEFAULTS.epochs})")
    t.add_argument("--l2", type=float, default=DEFAULTS.l2,
                   help="L2 weight decay lambda: each step scales W by 1 - lr*lambda/n (default 0)")
    t.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the one host random generator")
    t.add_argument("--validation", type=int, default=DEFAULTS.validation,
                   help="hold out the last N training images for validation (0: none; default 10000)")
    t.add_argument("--dtype", choices=backends.DTYPES, default=DEFAULTS.dtype)
    t.add_argument("--save", default=None, metavar="PATH", help="write the trained model to this .npz file")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("evaluate", help="report a saved model's accuracy on the test set")
    e.add_argument("--model", required=True, metavar="PATH")
    _add_device_flags(e)
    e.add_argument("--dtype", choices=backends.DTYPES, default=None, help="(default: the model's training dtype)")

    r = sub.add_parser("predict", help="classify PNG/PGM images with a saved model")
    r.add_argument("--model", required=True, metavar="PATH")
    r.add_argument("images", nargs="+", metavar="IMAGE")
    r.add_argument("--backend", choices=backends.BACKENDS, default=None)
    r.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N")
    return p


def _pick_backend(args, say):
    be = backends.resolve(args.backend, args.device)
    extra = f" ({be.note})" if be.note else ""
    say(f"device: {be.label}, backend {be.name}{extra}")
    return be


def cmd_train(args, say) -> int:
    cfg = TrainConfig(
        layers=args.layers, hidden=args.hidden, activation=args.activation, output=args.output, init=args.init,
        lr=args.lr, lr_schedule=args.lr_schedule, batch_size=args.batch_size, epochs=args.epochs, l2=args.l2, seed=args.seed,
        validation=args.validation, dtype=args.dtype, backend=args.backend, device=args.device,
        data_dir=args.data_dir, save=args.save, quiet=args.quiet,
    )
    cfg.check()
    dataset = data.load(cfg.data_dir)  # fully validated before any training
    be = _pick_backend(args, say)
    train(cfg, be, dataset, say=say)
    return 0


def _params_on(be, host_params, meta, dtype=None):
    """Checkpoint parameters on the backend's device, in ``dtype`` or the model's training dtype."""
    dtype = dtype or meta.get("config", {}).get("dtype", "float32")
    if dtype not in backends.DTYPES:
        dtype = "float32"
    return model.params_to_device(be, host_params, dtype), dtype


def cmd_evaluate(args, say) -> int:
    spec, host_params, meta = checkpoint.load(args.model)
    dataset = data.load(args.data_dir, num_classes=spec.sizes[-1])
    if dataset.num_features != spec.sizes[0]:
        raise UserError(f"{args.model}: the model takes {spec.sizes[0]} inputs, the data has {dataset.num_features} pixels per image")
    be = _pick_backend(args, say)
    params, dtype = _params_on(be, host_params, meta, args.dtype)
    preds = be.to_host(predictions(params, data.to_device(be, dataset.test), spec, dtype))
    labels = dataset.test.labels
    say(f"{'class':>5} {'images':>7} {'correct':>8} {'accuracy':>9}")
    for k in range(spec.sizes[-1]):
        mask = labels == k
        n_k, c_k = int(mask.sum()), int((preds[mask] == k).sum())
        acc = f"{100.0 * c_k / n_k:8.2f}%" if n_k else f"{'-':>9}"
        say(f"{k:>5} {n_k:>7} {c_k:>8} {acc}")
    correct = int((preds == labels).sum())
    say(format_accuracy(correct, len(labels)))
    return 0


def cmd_predict(args, say) -> int:
    spec, host_params, meta = checkpoint.load(args.model)
    shape = meta.get("config", {}).get("image_shape")
    if not shape or int(np.prod(shape)) != spec.sizes[0]:
        side = int(round(spec.sizes[0] ** 0.5))
        if side * side != spec.sizes[0]:
            raise UserError(f"{args.model}: cannot tell the image size for {spec.sizes[0]} inputs")
        shape = (side, side)
    inputs = np.stack([images.load_for_model(p, tuple(shape)) for p in args.images])
    be = _pick_backend(args, say)
    params, dtype = _params_on(be, host_params, meta)
    x = be.asarray(inputs.reshape(len(args.images), -1, 1), dtype)
    probs = be.to_host(model.forward(params, x, spec))[:, :, 0]
    for path, p in zip(args.images, probs):
        k = int(np.argmax(p))
        say(f"{path}: {k} ({100.0 * p[k]:.1f}%)")
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        args = build_parser().parse_args(argv)
        if not args.command:
            build_parser().print_help()
            return 2
        return COMMANDS[args.command](args, say)
    except UserError as e:
        if debug:
            raise
        print(f"xpnet: error: {e}", file=sys.stderr)
        return e.exit_code
    except Diverged as e:
        print(f"xpnet: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("xpnet: interrupted", file=sys.stderr)
        return 130
