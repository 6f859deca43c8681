"""Device choice (CUDA, then Apple's MPS, then CPU), the precision a synthesis runs in there, and the CPU allocator."""

from __future__ import annotations

import ctypes
import functools
import os
import time

import torch

from .errors import ZooError


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ZooError(f"unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ZooError(f"device {requested!r} asked for, but this torch sees no CUDA GPU; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ZooError(f"device {requested!r} asked for, but MPS is not available here; use --device cpu")
    return device


PRECISIONS = ("auto", "float32", "bfloat16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ZooError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return precision


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of a synthesis's activations for one of PRECISIONS: 'auto' is bfloat16 where `device` computes it
    natively and, on a CPU, measurably faster; else float32."""
    if precision == "auto":
        faster = native_bfloat16(device) and (device.type != "cpu" or bfloat16_convolutions_faster_on_cpu())
        return torch.bfloat16 if faster else torch.float32
    return getattr(torch, precision)


BFLOAT16_MIN_SPEEDUP = 1.2  # below this, float32's accuracy is worth more than the time saved


@functools.lru_cache(maxsize=1)
def bfloat16_convolutions_faster_on_cpu(repeats: int = 5) -> bool:
    """Whether a typical synthesis convolution (batch 4, 64 channels, 32 px, 3x3) runs at least BFLOAT16_MIN_SPEEDUP
    times faster in bfloat16 than in float32 on this CPU, timed once per process (about 0.05 s).

    Native support is not enough: oneDNN's AVX512-BF16 kernels run these shapes about twice as fast as float32 on AMD
    Zen 5, but at 0.6x of float32 on Intel Xeons whose AMX units are not exposed. One thread and the fastest of the
    alternating repeats, so that other processes on the cores sway the answer as little as possible.
    """
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(4, 64, 32, 32, generator=generator)
    weight = torch.randn(64, 64, 3, 3, generator=generator)
    seconds = {torch.float32: [], torch.bfloat16: []}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for _ in range(repeats + 1):  # the first round builds oneDNN's kernels
                for dtype, times in seconds.items():
                    start = time.perf_counter()
                    torch.nn.functional.conv2d(inputs.to(dtype), weight.to(dtype), padding=1)
                    times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    float32, bfloat16 = (min(times[1:]) for times in seconds.values())
    return float32 >= BFLOAT16_MIN_SPEEDUP * bfloat16


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def native_bfloat16(device: torch.device) -> bool:
    """bfloat16 arithmetic in hardware: CUDA GPUs from Ampere on, x86 CPUs with AVX512-BF16 or AMX.

    Elsewhere (AVX2, older AVX-512, MPS) bfloat16 is emulated or partial and slower than float32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so looked up with a fallback
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return False


ALLOCATOR_VARIABLE = "ZOO_CPU_ALLOCATOR"  # "system" leaves the C library's malloc settings as they are
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest accepted value on 64-bit systems
TRIM_THRESHOLD = 256 * 2**20


def tune_cpu_allocator() -> bool:
    """Keep freed tensor memory in the process instead of handing it back to the kernel (glibc only).

    glibc serves every block above its mmap threshold with fresh pages from the kernel, and hands freed memory at the
    top of its heap back once more than its trim threshold is free. A CPU training or inversion loop allocates and
    frees the same multi-MB activations at every step, so it faults them in again at every step, a page fault per
    4 KiB: about a fifth of a batched inversion step at 32 px. Fixed thresholds (which also stop glibc from adjusting
    them) keep such blocks in the heap. This is what PyTorch's CPU tuning guide gets by preloading jemalloc or
    tcmalloc; the cost is that up to TRIM_THRESHOLD of freed memory stays with the process. The `zoo` command calls
    this at start; set ZOO_CPU_ALLOCATOR=system to opt out.
    Returns whether the settings were applied.
    """
    if os.environ.get(ALLOCATOR_VARIABLE, "").lower() == "system" or not runs_on_glibc():
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def runs_on_glibc() -> bool:
    """Whether this process's C library is glibc (asked of the running library, not read from the Python binary)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False
