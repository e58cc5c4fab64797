"""Run by tests/test_fork.py as a script: ``python _fork_scenario.py METHOD``.

The parent calls fastconv (its parallel kernels start the threading layer), then a pool
of 2 workers started with METHOD (fork, forkserver, spawn) calls it again on the same
data; the results must equal the parent's. The parent also runs every case under one
thread (the serial twins) and checks that those equal the parallel results bit for bit
(gemm aside: BLAS rounds by its blocking, which follows the thread count).
Prints OK and exits 0, or exits non-zero; never waits more than WORKER_TIMEOUT_S for the
pool (a child killed by GNU OpenMP would otherwise leave Pool.map waiting forever).
"""
import multiprocessing as mp
import sys

import numpy as np

import fastconv
import fastconv.ndimage as fnd
import fastconv.nn as fnn

WORKER_TIMEOUT_S = 120


def _data(seed, shape, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# Each case is large enough to run a parallel region in the parent (see
# fastconv._jit.LAUNCH_WORK); one is small, which runs serially everywhere.
CASES = [
    lambda: fastconv.convolve(_data(0, (256, 256)), _data(1, (5, 5)), mode="same",
                              method="direct"),
    lambda: fastconv.convolve(_data(2, (256, 256), np.float32), _data(3, (3, 3), np.float32),
                              method="direct"),
    lambda: fastconv.convolve(np.arange(300 * 300).reshape(300, 300) % 7,
                              np.arange(9).reshape(3, 3), method="direct"),
    lambda: fastconv.convolve(_data(4, 1000), _data(5, 5)),
    lambda: fastconv.convolve(_data(6, (256, 256)), np.outer(_data(7, 9), _data(8, 9)),
                              mode="same", method="separable"),
    lambda: fnd.gaussian_filter(_data(9, (256, 256)), 2.0),
    lambda: fnd.correlate1d(_data(10, (256, 256)), _data(11, 7), axis=0),
    lambda: fnd.uniform_filter(_data(12, (256, 256)), 9),
    lambda: fnn.conv2d(_data(13, (2, 8, 64, 64), np.float32),
                       _data(14, (8, 8, 3, 3), np.float32), stride=2, method="direct"),
    lambda: fnn.conv2d(_data(15, (2, 4, 48, 48)), _data(16, (2, 4, 5, 5)), method="direct"),
    lambda: fnn.conv2d(_data(17, (2, 8, 64, 64), np.float32),
                       _data(18, (16, 8, 3, 3), np.float32), method="gemm"),
    lambda: fnn.conv2d(_data(19, (2, 8, 64, 64)), _data(20, (8, 8, 3, 3)), method="winograd"),
    lambda: fnn.conv2d(_data(21, (2, 4, 64, 64)), _data(22, (8, 4, 9, 9)), method="fft"),
    lambda: fnn.conv2d(_data(23, (2, 8, 64, 64), np.float32),
                       _data(24, (8, 1, 5, 5), np.float32), padding=2, groups=8,
                       method="direct"),
    lambda: fnn.conv2d_weight(_data(25, (2, 8, 64, 64), np.float32), (8, 1, 3, 3),
                              _data(26, (2, 8, 32, 32), np.float32), stride=2, padding=1,
                              groups=8, method="direct"),
    # the 3-D FFT's tap sum over planes (kernels/cpu/_fft_mac.py)
    lambda: fastconv.convolve(_data(27, (48, 48, 48), np.float32),
                              _data(28, (5, 5, 5), np.float32), method="fft"),
]


# gemm's chunks of columns, and so BLAS's blocking and rounding, follow the thread count.
THREAD_DEPENDENT = {10}


def run_case(i):
    return CASES[i]()


def main(method):
    parent = [f() for f in CASES]
    with fastconv.threads(1):
        serial = [f() for f in CASES]
    differ = [i for i, (a, b) in enumerate(zip(parent, serial))
              if i not in THREAD_DEPENDENT and not np.array_equal(a, b)]
    if differ:
        print(f"serial twins differ from the parallel kernels in cases {differ}")
        return 1
    with mp.get_context(method).Pool(2) as pool:
        got = pool.map_async(run_case, range(len(CASES))).get(WORKER_TIMEOUT_S)
    differ = [i for i, (a, b) in enumerate(zip(parent, got)) if not np.array_equal(a, b)]
    if differ:
        print(f"{method} workers' results differ from the parent's in cases {differ}")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
