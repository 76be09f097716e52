"""Looking inside a network: what it imagines a digit to be, and one image learned step by step.

Both run on any backend: they use the model's own forward and input-gradient code.
"""

from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as device_of

from xpnet.backends import ops_for, to_host
from xpnet.engine import budget, model
from xpnet.engine.step import Net, StepOptions, Steps


def _tv_grad(x, rows: int, cols: int):
    """Gradient of the (smoothed, squared) total variation of images x: (n, rows*cols) -> same shape."""
    xp = array_namespace(x)
    img = xp.reshape(x, (x.shape[0], rows, cols))
    dv = img[:, 1:, :] - img[:, :-1, :]  # (n, rows-1, cols)
    dh = img[:, :, 1:] - img[:, :, :-1]  # (n, rows, cols-1)
    zr = xp.zeros((x.shape[0], 1, cols), dtype=x.dtype, device=device_of(x))
    zc = xp.zeros((x.shape[0], rows, 1), dtype=x.dtype, device=device_of(x))
    # d/dx sum(dv^2 + dh^2) = 2 * (incoming difference - outgoing difference)
    g = (xp.concat([zr, dv], axis=1) - xp.concat([dv, zr], axis=1)) + (
        xp.concat([zc, dh], axis=2) - xp.concat([dh, zc], axis=2)
    )
    return xp.reshape(2.0 * g, x.shape)


def imagine(
    params,
    spec: model.Spec,
    digits,
    image_shape,
    steps: int = 300,
    step_size: float = 0.05,
    l2: float = 1e-3,
    tv: float = 5e-3,
    start: float = 0.0,
):
    """Gradient ascent on the input towards each target class.

    Starting from a uniform image of value ``start``, each step moves the pixels along the
    normalised gradient of log p(target | x) (for a sigmoid output: minus the quadratic cost),
    minus an L2 and a total-variation penalty, and clips them to [0, 1].
    digits: host int sequence (n,). Returns (images (n, rows, cols) host float64,
    probabilities (n, classes) host float64 of the network's output for them).
    """
    W0 = params[0][0]
    ops = ops_for(W0)
    xp = ops.xp
    dev, dtype = device_of(W0), W0.dtype
    rows, cols = image_shape
    n, classes = len(digits), spec.sizes[-1]
    onehot = xp.asarray(np.eye(classes)[np.asarray(digits)][:, :, None], dtype=dtype, device=dev)
    x = xp.full((n, spec.sizes[0]), start, dtype=dtype, device=dev)
    with ops.errors_ignored():  # a model whose outputs overflow: its images, without warnings
        for _ in range(steps):
            g = model.input_grad(params, xp.reshape(x, (n, spec.sizes[0], 1)), onehot, spec)
            g = xp.reshape(g, x.shape) * n  # the loss is a batch mean: undo the 1/n
            g = g + l2 * x + tv * _tv_grad(x, rows, cols)
            scale = xp.max(xp.abs(g), axis=1, keepdims=True) + 1e-12
            x = ops.clip(x - step_size * g / scale, 0.0, 1.0)
        probs = model.forward(params, xp.reshape(x, (n, spec.sizes[0], 1)), spec)
    return to_host(x).reshape(n, rows, cols).astype(np.float64), to_host(probs)[:, :, 0].astype(np.float64)


def walkthrough(
    backend,
    image,
    label: int,
    num_classes: int,
    iterations: int = 250,
    every: int = 10,
    hidden: int = 28,
    lr: float = 0.25,
    seed: int = 0,
    say=print,
):
    """The single-example demonstration: a fresh 784-``hidden``-10 sigmoid network with quadratic
    cost (N(0,1) init) learns one image by gradient descent, xpnet's own training step on a
    batch of that one image. Every ``every`` iterations it prints the guess, the output
    activations and the error vector (output - target).

    image: host (rows, cols) uint8. Returns the list of guesses, one per printed iteration.
    """
    spec = model.Spec((image.size, hidden, num_classes), "sigmoid", "sigmoid", "normal")
    budget.check(budget.estimate(spec.sizes, 8), backend, {"sizes": f"--hidden {hidden}"})  # float64, one image
    params = model.params_to_device(backend, model.init_params_host(spec, np.random.default_rng(seed)), "float64")
    target = np.zeros((1, num_classes))
    target[0, label] = 1.0
    X, Y = backend.asarray(image.reshape(1, -1)), backend.asarray(target, "float64")
    net, recipe = Net(model.layers_of(params)), StepOptions()
    steps = Steps(backend.ops, spec, recipe, X, Y, batch_size=1)
    order = backend.asarray(np.zeros(1, dtype=np.int64))
    x = backend.asarray(image.reshape(1, -1, 1) / 255.0, "float64")
    say(
        f"walkthrough: one training image (label {label}) through a fresh {'-'.join(map(str, spec.sizes))} "
        f"sigmoid network, quadratic cost, lr {lr}"
    )
    guesses = []
    with backend.ops.errors_ignored():  # a huge --lr overflows: the outputs show it, without warnings
        for it in range(1, iterations + 1):
            steps.run(net, order, 0, 1, [recipe.scalars(spec, lr, it, it, 1)], steps.new_total())
            if it % every == 0 or it == iterations:
                out = backend.to_host(model.forward(model.params_of(net.layers), x, spec))[0, :, 0]
                guess = int(np.argmax(out))
                guesses.append(guess)
                say(
                    f"iteration {it:>4}: guess {guess}  "
                    + ("(correct)" if guess == label else f"(the answer is {label})")
                )
                say("  output: " + " ".join(f"{k}:{v:.3f}" for k, v in enumerate(out)))
                say("  error:  " + " ".join(f"{k}:{v:+.3f}" for k, v in enumerate(out - target[0])))
    return guesses
