"""Array libraries: command-line flags -> (namespace, device, op set); host<->device; sync.

This package is the only place that names an array library. Everything else gets its
namespace from its arrays (``array_api_compat.array_namespace``) and its op set from
``ops_for(array)``, and uses only the standard's functions and the op set's methods.
Host-side NumPy outside this package is limited to files, initialisation and checkpoints:
reading IDX files and images (files/idx.py, files/images.py), initial weights and batch order
from the host generator (engine/model.py, training.py), checkpoints (files/checkpoint.py),
constants made once (engine/augment.py, engine/rand.py) and pictures (files/plots.py).

Modules: ``backend`` (the Backend type, op-set dispatch), ``devices`` (flags or an array to a
Backend, CUDA probing), ``host`` (host transfers, an array's library and device), ``threads``
(CPU thread pools), ``base`` (the op set in plain array-API code, the reference), ``numpy``
(in place with ``out=``; CuPy shares it), ``cupy`` with ``cuda_kernels``, ``torch``, ``jax``
(the step jitted, a chunk of steps per call).
"""

from xpnet.backends.backend import BACKENDS, DTYPES, Backend, ops_for, reference_ops
from xpnet.backends.devices import of_array, resolve, runs_on
from xpnet.backends.host import device_of, host_available, library_of, plain, to_host

__all__ = [
    "BACKENDS",
    "DTYPES",
    "Backend",
    "device_of",
    "host_available",
    "library_of",
    "of_array",
    "ops_for",
    "plain",
    "reference_ops",
    "resolve",
    "runs_on",
    "to_host",
]
