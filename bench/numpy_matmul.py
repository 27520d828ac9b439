"""CPU ceiling for bench/matmul.ts: numpy's float32 C = A @ B.T at n x n x n.

Prints one JSON line: {"n": n, "gflops": ..., "ms": ..., "numpy": version,
"blas": [the BLAS libraries mapped into the process], "openblas_core": the
kernels OpenBLAS chose (its openblas_get_corename) or null}, so a reader can
tell OpenBLAS from Debian's single-threaded reference BLAS, and bench/blas.ts
which OPENBLAS_CORETYPE runs fastest.
"""
import ctypes
import json
import sys
import time

import numpy as np

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
a @ b.T  # warm-up (thread pool, caches)
reps = 5
start = time.perf_counter()
for _ in range(reps):
    c = a @ b.T
elapsed = (time.perf_counter() - start) / reps

blas = set()
try:
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "blas" in path.lower():
                blas.add(path)
except OSError:
    pass
core = None
for path in sorted(blas):
    try:
        corename = ctypes.CDLL(path).openblas_get_corename
    except (OSError, AttributeError):
        continue
    corename.restype = ctypes.c_char_p
    core = corename().decode()
    break
print(json.dumps({"n": n, "gflops": 2 * n**3 / elapsed / 1e9, "ms": elapsed * 1e3,
                  "numpy": np.__version__, "blas": sorted(blas), "openblas_core": core}))
