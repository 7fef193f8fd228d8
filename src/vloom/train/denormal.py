"""Flush denormal floats to zero on every CPU thread torch computes on.

x86 cores run arithmetic on denormals (|x| < 1.2e-38 in fp32) tens of times slower than on
normal numbers; a softmax whose logits spread by more than ~87 puts such values into the
logits' gradient and every matmul that reads it slows down. Setting FTZ/DAZ costs nothing
measurable in accuracy for training (values that small are zero for any update). The flags
live in each thread's MXCSR register: `torch.set_flush_denormal` sets only the calling
thread's, and OpenMP worker threads that already exist keep theirs (a matmul then flushes
the rows the main thread computes and not the others'). `set_flush_denormal_all` also runs
the setter once on each thread of torch's OpenMP team, through libgomp's `GOMP_parallel`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
from collections.abc import Iterator
from pathlib import Path

import torch

_BODY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@functools.cache
def _gomp() -> ctypes.CDLL | None:
    """The libgomp torch's intra-op threads belong to, or None (another OpenMP runtime, or
    none: then only the calling thread is set)."""
    if not torch._C.has_openmp:
        return None
    names = sorted(str(p) for p in (Path(torch.__file__).parent / "lib").glob("libgomp*"))
    names.append(ctypes.util.find_library("gomp") or "libgomp.so.1")
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            fn = lib.GOMP_parallel
        except (OSError, AttributeError):
            continue
        fn.argtypes = [_BODY, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        fn.restype = None
        return lib
    return None


def flushing() -> bool:
    """Whether the calling thread flushes denormals (torch has no getter: a denormal times one
    reads zero when it does)."""
    return float(torch.tensor([1e-39]) * 1.0) == 0.0


def set_flush_denormal_all(on: bool) -> bool:
    """Set (or clear) flush-to-zero on the calling thread and on each of torch's OpenMP
    threads; False when the CPU cannot flush (then nothing changed)."""
    if not torch.set_flush_denormal(on):
        return False
    lib = _gomp()
    if lib is not None:
        body = _BODY(lambda _: torch.set_flush_denormal(on))
        # num_threads 0: the team torch.set_num_threads sized; threads created later are
        # started by this thread and inherit its MXCSR.
        lib.GOMP_parallel(body, None, 0, 0)
    return True


@contextlib.contextmanager
def flush_denormals(device: torch.device) -> Iterator[None]:
    """Flush denormals while the block runs on a CPU device, then restore the previous mode;
    a no-op on other devices (their kernels choose their own denormal handling)."""
    if device.type != "cpu":
        yield
        return
    before = flushing()
    set_flush_denormal_all(True)
    try:
        yield
    finally:
        set_flush_denormal_all(before)
