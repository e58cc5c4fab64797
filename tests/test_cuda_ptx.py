"""Every CUDA kernel compiles to PTX for every dtype it is launched with, at compute
capability 8.0 and 9.0 (no GPU needed; the simulator checks no types, so this is the
type check of kernels/cuda). Kernels are found by walking the kernel modules, so a new
kernel cannot be left out: each module lists its launch signatures in
``PTX_SIGNATURES()`` and this test fails for any ``@jit`` kernel without one. It also
holds every kernel's static shared memory to the 48 KiB a block gets without opting in
(the PTX compiles past it; the launch would fail)."""
import importlib
import pkgutil
import re

import pytest

pytest.importorskip("numba.cuda")

pytestmark = pytest.mark.skipif(
    __import__("numba").config.ENABLE_CUDASIM,
    reason="PTX compilation needs the real CUDA target (the simulator is on)")


def _modules():
    import fastconv.kernels.cuda as pkg
    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__))
    return [importlib.import_module(f"fastconv.kernels.cuda.{n}") for n in names
            if n != "_backend"]


def _dispatchers(obj, seen=None):
    """Kernel dispatchers held by a module, directly or in dicts/tuples/lists."""
    from numba.cuda.dispatcher import CUDADispatcher
    if isinstance(obj, CUDADispatcher):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _dispatchers(v)
    elif isinstance(obj, (tuple, list)):
        for v in obj:
            yield from _dispatchers(v)


def _kernels(mod):
    found = {}
    for name, val in vars(mod).items():
        if name.startswith("__"):
            continue
        for d in _dispatchers(val):
            if getattr(d.py_func, "__module__", None) == mod.__name__:
                found[id(d)] = d
    return list(found.values())


def _cases():
    cases = []
    for mod in _modules():
        sigs = mod.PTX_SIGNATURES() if hasattr(mod, "PTX_SIGNATURES") else {}
        for k in _kernels(mod):
            cases.append(pytest.param(mod, k, sigs.get(k),
                                      id=f"{mod.__name__.rsplit('.', 1)[1]}.{k.__name__}"))
    return cases


@pytest.fixture(scope="module")
def device_helpers_compile(request):
    """Kernels that call ``@jit(device=True)`` helpers: numba-cuda asks the (absent)
    driver for the current device while compiling them; a stand-in with a compute
    capability lets them compile (the NOTES-toolchain.md workaround, in this test only)."""
    import numba.cuda.dispatcher as disp

    class _Dev:
        compute_capability = (8, 0)

    mp = pytest.MonkeyPatch()
    mp.setattr(disp, "get_current_device", lambda: _Dev(), raising=False)
    yield
    mp.undo()


# A block's static shared memory is limited to 48 KiB (more needs a dynamic opt-in); PTX
# compiles past that, the launch on a GPU would fail.
SHARED_LIMIT = 48 * 1024
_SHARED_DECL = re.compile(r"\.shared\s+\.align\s+\d+\s+\.b8\s+\S+\[(\d+)\]")


@pytest.mark.parametrize("mod,kernel,sigs", _cases())
def test_kernel_compiles_to_ptx(mod, kernel, sigs, device_helpers_compile):
    from fastconv.kernels.cuda._backend import compile_ptx
    assert sigs, f"{mod.__name__}.{kernel.__name__}: no PTX_SIGNATURES entry"
    for sig in sigs:
        for cc in ((8, 0), (9, 0)):
            ptx = compile_ptx(kernel, sig, cc=cc)
            assert ".entry" in ptx, (kernel.__name__, sig, cc)
            shared = sum(int(n) for n in _SHARED_DECL.findall(ptx))
            assert shared <= SHARED_LIMIT, (kernel.__name__, sig, shared)


def test_every_module_lists_signatures():
    for mod in _modules():
        if _kernels(mod):
            assert hasattr(mod, "PTX_SIGNATURES"), mod.__name__
