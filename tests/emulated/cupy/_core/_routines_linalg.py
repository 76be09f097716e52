"""cupy._core._routines_linalg: cuBLAS compute types (recorded, no effect on results)."""

from cupy import _emulation

COMPUTE_TYPE_TBD, COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_PEDANTIC = 0, 1, 2
COMPUTE_TYPE_FP16, COMPUTE_TYPE_FP32, COMPUTE_TYPE_FP64 = 3, 4, 5
COMPUTE_TYPE_BF16, COMPUTE_TYPE_TF32 = 6, 7


def set_compute_type(dtype, compute_type) -> None:
    _emulation.compute_type_calls.append((dtype, compute_type))


def get_compute_type(dtype) -> int:
    for dt, ct in reversed(_emulation.compute_type_calls):
        if dt == dtype:
            return ct
    return COMPUTE_TYPE_DEFAULT
