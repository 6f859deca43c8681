import os
import subprocess
import sys

import pytest
import torch

from zoo import devices
from zoo.devices import ALLOCATOR_VARIABLE, compute_dtype, pick_device, runs_on_glibc, tune_cpu_allocator
from zoo.errors import ZooError

# Five rounds of what a training or inversion step does to memory: 12 activations of 4 MiB each are allocated and
# written, then all freed. The script prints whether the allocator was tuned and the page faults of rounds 2-5.
ROUNDS_SCRIPT = """
import resource, sys, torch
from zoo.devices import tune_cpu_allocator
tuned = tune_cpu_allocator() if sys.argv[1] == "tuned" else False
def round_of_activations():
    activations = [torch.ones(2**20) for _ in range(12)]
    del activations
round_of_activations()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    round_of_activations()
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> tuple[bool, int]:
    env = {**os.environ, ALLOCATOR_VARIABLE: ""}
    output = subprocess.run([sys.executable, "-c", ROUNDS_SCRIPT, mode], env=env, capture_output=True, text=True, check=True)
    tuned, faults = output.stdout.split()
    return tuned == "True", int(faults)


@pytest.mark.skipif(not runs_on_glibc(), reason="the allocator settings are glibc's")
def test_tuned_allocator_reuses_freed_activation_memory():
    # Each subprocess's own faults; the fewest tuned ones of three, since a busy machine (a full suite running beside
    # it) has been seen to add a few thousand to a single tuned run (5,120 once in three CI runs, else 1,024).
    tuned_runs = [page_faults("tuned") for _ in range(3)]
    tuned, tuned_faults = all(flag for flag, _ in tuned_runs), min(faults for _, faults in tuned_runs)
    untuned, untuned_faults = page_faults("system")
    assert tuned and not untuned
    # A round's activations are 12,288 pages. Untuned, glibc hands freed memory back to the kernel and faults it in
    # again (every round in most runs, in one round at least); tuned, the rounds reuse the heap (about 1k faults).
    assert untuned_faults > 8000
    assert tuned_faults < 4000


def test_allocator_tuning_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(ALLOCATOR_VARIABLE, "system")
    assert tune_cpu_allocator() is False


def test_unavailable_devices_are_refused_with_the_fix():
    with pytest.raises(ZooError, match="use auto, cpu"):
        pick_device("tpu")
    assert pick_device("cpu").type == "cpu"


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("faster", [True, False])
def test_auto_precision_is_bfloat16_only_where_the_hardware_computes_it_faster(monkeypatch, native, faster):
    monkeypatch.setattr(devices, "native_bfloat16", lambda device: native)
    monkeypatch.setattr(devices, "bfloat16_convolutions_faster_on_cpu", lambda: faster)
    cpu = torch.device("cpu")
    assert compute_dtype("auto", cpu) == (torch.bfloat16 if native and faster else torch.float32)
    assert compute_dtype("float32", cpu) == torch.float32 and compute_dtype("bfloat16", cpu) == torch.bfloat16


def test_bfloat16_speed_is_measured_once_per_process():
    devices.bfloat16_convolutions_faster_on_cpu.cache_clear()
    first = devices.bfloat16_convolutions_faster_on_cpu()
    assert isinstance(first, bool) and devices.bfloat16_convolutions_faster_on_cpu() is first
    assert devices.bfloat16_convolutions_faster_on_cpu.cache_info().hits == 1


def test_native_bfloat16_follows_the_cpu_flags():
    flags = open("/proc/cpuinfo").read().split() if os.path.exists("/proc/cpuinfo") else []
    if not flags:
        pytest.skip("no /proc/cpuinfo to compare with")
    native = devices.native_bfloat16(torch.device("cpu"))
    if "avx512_bf16" in flags:
        assert native
    elif "amx_bf16" not in flags:  # AMX also needs the kernel's permission, which the flags do not show
        assert not native
    assert devices.native_bfloat16(torch.device("meta")) is False
