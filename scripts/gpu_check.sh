#!/usr/bin/env bash
# The one GPU check of issue 12 (under 5 minutes on an H200-class machine):
#   1. install the CUDA extra and CuPy (skip with GPU_CHECK_NO_INSTALL=1 where they are),
#   2. `python -m fastconv info` (the device, or why none: then stop),
#   3. the CUDA tests on hardware, the simulator OFF: `pytest -m cuda tests/cuda`
#      (NumbaPerformanceWarning is an error there: no implicit host copies),
#   4. the PTX compile of every kernel (tests/test_cuda_ptx.py, cc 8.0 and 9.0),
#   5. the benchmark group `python -m fastconv bench --device cuda` (CUDA events; direct,
#      gaussian, fft against cupyx and torch/cuDNN, auto regret, cold first calls).
# Output: everything on stdout; the bench table also in $OUT/gpu_bench.txt when $OUT is set.
# Usage: scripts/gpu_check.sh [--quick]   (run from the repository root)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
QUICK=""
[ "${1:-}" = "--quick" ] && QUICK="--quick"
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-$PWD/.numba-cache-gpu}
export FASTCONV_CACHE_DIR=${FASTCONV_CACHE_DIR:-$(mktemp -d)}
unset NUMBA_ENABLE_CUDASIM
export FASTCONV_TEST_GPU=1        # tests/conftest.py collects tests/cuda on a GPU only then
OUT=${OUT:-}
start=$(date +%s)
step() { echo; echo "== $1 ($(( $(date +%s) - start )) s)"; }

if [ -z "${GPU_CHECK_NO_INSTALL:-}" ]; then
  step "install: fastconv[test,cuda] + cupy-cuda13x"
  $PY -m pip install -q -e ".[test,cuda]" "cupy-cuda13x" || {
    echo "install failed: set GPU_CHECK_NO_INSTALL=1 with the packages already present"; exit 2; }
fi

step "info"
$PY -m fastconv info || exit 2
$PY - <<'PY' || { echo "no usable GPU: nothing to check on hardware"; exit 3; }
from fastconv._arrays import cuda_problem
why = cuda_problem()
if why:
    raise SystemExit(why)
PY
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
  --format=csv 2>/dev/null || true

rc=0
step "CUDA tests on hardware (pytest -m cuda tests/cuda, simulator off)"
timeout 150 $PY -m pytest -q -m cuda tests/cuda -p no:cacheprovider \
  -W error::numba.core.errors.NumbaPerformanceWarning || rc=1

if [ -f tests/test_cuda_ptx.py ]; then
  step "PTX compile of every kernel (cc 8.0, 9.0)"
  timeout 90 $PY -m pytest -q tests/test_cuda_ptx.py -p no:cacheprovider || rc=1
fi

step "bench --device cuda $QUICK"
if [ -n "$OUT" ]; then
  timeout 150 $PY -m fastconv bench --device cuda --no-progress $QUICK | tee "$OUT/gpu_bench.txt" || rc=1
else
  timeout 150 $PY -m fastconv bench --device cuda --no-progress $QUICK || rc=1
fi

step "done, rc=$rc"
exit $rc
