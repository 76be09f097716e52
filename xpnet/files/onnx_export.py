"""A trained network as an ONNX graph, built with the ``onnx`` package's helpers (NumPy only).

The graph (opset 17) takes ``input`` (N, features), the network's inputs as floats (pixels
scaled to [0, 1], as xpnet feeds them: uint8 images divided by 255), in the model's float type,
and gives:
  probabilities  (N, classes)  what ``predict_proba`` gives: Gemm per layer (y = x W^T + b),
                               the hidden activation (Relu, Sigmoid or Tanh), and Softmax (of
                               an identity output's scores too); a sigmoid output's values
                               divided by their sum
  label          (N,)          the class of the largest probability (ArgMax), as its label
                               (Gather from the classes: int64, double, bool or string)
or, for a regressor (``regression``), only
  predictions    (N, targets)  what ``MLPRegressor.predict`` gives (the identity output)
"""

from __future__ import annotations

import numpy as np

from xpnet.engine.model import Spec
from xpnet.errors import UserError

OPSET = 17
IR_VERSION = 8  # the IR version that came with opset 17 (ONNX 1.12): what runtimes since then read
HIDDEN_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


def _onnx():
    try:
        import onnx
    except ImportError:
        raise UserError("ONNX export needs the onnx package: pip install 'xpnet[onnx]'") from None
    return onnx


def build(spec: Spec, params, classes=None, name: str = "xpnet", regression: bool = False):
    """The ``onnx.ModelProto`` of the network ``spec`` with host parameters
    [(W (1,out,in), b (1,out,1)), ...]; ``classes``: the output labels (default 0..K-1);
    ``regression``: a regressor's graph (its outputs as ``predictions``, no label)."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    dtype = np.result_type(*[W.dtype for W, _ in params])
    elem = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    dtype = np.float64 if elem == TensorProto.DOUBLE else np.float32
    init, nodes, x = [], [], "input"
    for i, (W, b) in enumerate(params):
        init += [
            numpy_helper.from_array(np.asarray(W[0], dtype), f"W{i}"),
            numpy_helper.from_array(np.asarray(b[0, :, 0], dtype), f"b{i}"),
        ]
        z = f"z{i}" if i < len(params) - 1 else "predictions" if regression else "logits"
        nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"b{i}"], [z], transB=1))
        if i < len(params) - 1:
            x = f"a{i}"
            nodes.append(helper.make_node(HIDDEN_OPS[spec.activation], [z], [x]))
    if regression:
        outputs = [helper.make_tensor_value_info("predictions", elem, ["N", spec.sizes[-1]])]
    else:
        nodes += _probabilities(helper, numpy_helper, init, spec.output)
        label_elem = _labels(numpy_helper, init, classes, spec.sizes[-1])
        nodes += [
            helper.make_node("ArgMax", ["probabilities"], ["index"], axis=1, keepdims=0),
            helper.make_node("Gather", ["classes", "index"], ["label"], axis=0),
        ]
        outputs = [
            helper.make_tensor_value_info("probabilities", elem, ["N", spec.sizes[-1]]),
            helper.make_tensor_value_info("label", label_elem, ["N"]),
        ]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", elem, ["N", spec.sizes[0]])], outputs, init
    )
    m = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="xpnet", ir_version=IR_VERSION
    )
    onnx.checker.check_model(m)
    return m


def _probabilities(helper, numpy_helper, init: list, output: str) -> list:
    """The nodes from ``logits`` to ``probabilities``: softmax (of an identity output's scores
    too), or a sigmoid's outputs divided by their sum."""
    if output in ("softmax", "identity"):
        return [helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    init.append(numpy_helper.from_array(np.array([1], np.int64), "class_axis"))
    return [
        helper.make_node("Sigmoid", ["logits"], ["outputs"]),
        helper.make_node("ReduceSum", ["outputs", "class_axis"], ["total"], keepdims=1),
        helper.make_node("Div", ["outputs", "total"], ["probabilities"]),
    ]


def _labels(numpy_helper, init: list, classes, k: int) -> int:
    """Adds the ``classes`` constant (K,) to ``init``; returns its ONNX element type."""
    labels = np.arange(k, dtype=np.int64) if classes is None else np.asarray(classes)
    if labels.dtype.kind == "O" and not all(isinstance(v, str) for v in labels.tolist()):
        labels = np.asarray(labels.tolist())  # numbers held as objects: their own dtype
    if labels.dtype.kind in "iu":
        labels = labels.astype(np.int64)
    elif labels.dtype.kind == "f":
        labels = labels.astype(np.float64)
    elif labels.dtype.kind in "US":
        labels = labels.astype(object)
    elif labels.dtype.kind not in "bO":
        raise ValueError(f"class labels of dtype {labels.dtype} have no ONNX tensor type")
    tensor = numpy_helper.from_array(labels, "classes")
    init.append(tensor)
    return tensor.data_type


def save(path, spec: Spec, params, classes=None, flag: str = "path", regression: bool = False) -> None:
    """Write the graph of ``build`` to ``path`` atomically; UserError naming ``flag`` when the
    file cannot be written."""
    from xpnet.files.atomic import atomic_write

    data = build(spec, params, classes, regression=regression).SerializeToString()
    try:
        atomic_write(path, data)
    except IsADirectoryError:
        raise UserError(f"{flag} {path}: is a directory; give a file name such as model.onnx") from None
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot write ({e.strerror or e})") from None
