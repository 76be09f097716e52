"""cupy_backends of the emulated CuPy: the raw library bindings xpnet calls (cuBLAS's strided
batched GEMM), on the emulator's device buffers."""
