"""What xpnet reads and writes: IDX data sets and the bundled MNIST (``idx``), checkpoints and
atomic writes (``checkpoint``), images for ``predict`` (``images``), pictures (``plots``) and
ONNX graphs (``onnx_export``)."""
