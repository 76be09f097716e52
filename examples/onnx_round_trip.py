"""Train a small network on MNIST, export it as ONNX and check that onnxruntime gives the same
labels (needs: pip install 'xpnet[onnx]' onnxruntime).

    python examples/onnx_round_trip.py
"""

import tempfile
from pathlib import Path

import numpy as np
import onnxruntime

import xpnet
from xpnet.files import idx

with tempfile.TemporaryDirectory() as folder:
    model = xpnet.train(hidden=(64,), epochs=1, validation=50000, verbose=0)  # 10,000 images, one epoch
    path = Path(folder) / "mnist.onnx"
    model.to_onnx(path)

    images = idx.load().test.images[:1000]
    session = onnxruntime.InferenceSession(str(path))
    pixels = (images.reshape(len(images), -1) / 255).astype(np.float32)
    probabilities, labels = session.run(["probabilities", "label"], {"input": pixels})
    same = (labels == model.predict(images)).mean()
    print(f"test accuracy {model.test_accuracy:.4f}; onnxruntime agrees with xpnet on {100 * same:.1f}% of 1000 images")
    assert same == 1.0
