"""Test-wide settings: the same environment a notebook kernel gets from `make test`, even under plain `pytest`."""

import os

# Kernels started by nbval inherit this process's environment: fix set ordering and math-library threads.
for name, value in {"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                    "MKL_NUM_THREADS": "1"}.items():
    os.environ.setdefault(name, value)
