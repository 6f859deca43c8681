#!/usr/bin/env bash
# Every figure of docs/benchmarks.md in one go, with the machine it ran on and how busy it was, into one raw log.
#   benchmarks/run_all.sh [--quick] [OUT]     (from the checkout's root, its venv active)
# About 37 minutes on 2 idle cores of an AMD EPYC Zen 4 (the 256 px training steps take 20 of them); --quick runs
# each script once with tiny settings (about 5 minutes idle) to check that everything works, its figures worthless.
# Settings: THREADS (default 2) threads for torch in every script; ROSINALITY=DIR, a checkout of
# rosinality/stylegan2-pytorch, adds its own model.py to the inference table. The figures hold only for an idle
# machine: the log records the load average and the busiest processes before and after each script.
set -euo pipefail

quick=false
if [ "${1:-}" = "--quick" ]; then
  quick=true
  shift
fi
out=${1:-/tmp/zoo-benchmarks-$(date -u +%Y%m%dT%H%M%SZ).txt}
threads=${THREADS:-2}
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."

load() {  # the load average, and the processes busiest over the last second (top's second frame)
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); busiest processes now:"
  top -b -n 2 -d 1 -o %CPU | awk '/^top -/ { frame++ } frame == 2' | sed -n '7,12p'
}

machine() {
  echo "# zoo benchmarks, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
  lscpu | grep -E '^(Model name|CPU family|Model|CPU\(s\)|Thread\(s\) per core|Core\(s\) per socket):'
  echo "avx512 / amx / bf16 flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E 'avx512|amx|bf16' | tr '\n' ' ')"
  python -c 'import os, torch
print(f"torch {torch.__version__}, cpu capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads,",
      "OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS"))'
  echo "ZOO_CPU_ALLOCATOR=${ZOO_CPU_ALLOCATOR:-tuned (default)}"
  load
  if awk '{ exit !($1 > 0.5) }' /proc/loadavg; then
    echo "WARNING: 1-minute load average above 0.5: unless the busiest processes above are near 0% (the average trails" \
      "a process that just ended), the machine is not idle and these figures are not for the docs"
  fi
}

step() {  # step NAME COMMAND...: one benchmark, its command, output, wall time and the load around it; a failure is
  # recorded and the next benchmark runs
  local name=$1 started
  shift
  echo
  echo "## $name"
  echo "\$ $(printf '%q ' "$@")"
  load
  started=$(date +%s)
  { "$@" 2>&1 || echo "FAILED: exit code $?"; } | { grep --line-buffered -v -E 'UserWarning|warnings.warn' || true; }
  echo "wall time: $(($(date +%s) - started)) s"
  load
}

rosinality=()
if [ -n "${ROSINALITY:-}" ]; then rosinality=(--rosinality "$ROSINALITY"); fi
bfloat16=$(python -c 'import torch; from zoo.devices import native_bfloat16; print(native_bfloat16(torch.device("cpu")))')

run_all() {
  machine
  if $quick; then
    step "inference (quick)" python benchmarks/bench_modconv.py --repeats 1 --batch 1 "${rosinality[@]}"
    step "training (quick)" python benchmarks/bench_training.py --steps 1 --repeats 1 --setups "32 px small, batch 16" "64 px emoji, batch 16"
    step "distance (quick)" python benchmarks/bench_distance.py --repeats 1 --models 3 --samples 16
    step "inversion (quick)" python benchmarks/bench_inversion.py --repeats 1 --images 2 --steps 5
    step "encoder (quick)" python benchmarks/bench_encoder.py --repeats 1 --threads "$threads"
    step "distilled translator (quick)" python benchmarks/bench_encoder.py --repeats 1 --method distilled --threads "$threads"
    step "alignment (quick)" python benchmarks/bench_align.py --repeats 1 --threads "$threads"
  else
    step "inference" python benchmarks/bench_modconv.py --repeats 7 "${rosinality[@]}"
    step "training, 32 px (a whole R1 cycle per repeat)" python benchmarks/bench_training.py --setups "32 px small, batch 16" --steps 16 --repeats 3
    step "training, bfloat16 against float32 at 64 px (plain steps)" python benchmarks/bench_training.py --setups "64 px emoji, batch 16" --steps 1 --repeats 3
    step "training, 256 px config-f (plain steps)" python benchmarks/bench_training.py --setups "256 px config-f, batch 4" --steps 1 --repeats 3
    step "distance matrix" python benchmarks/bench_distance.py --repeats 5
    step "batched inversion" python benchmarks/bench_inversion.py --repeats 5
    if [ "$bfloat16" = True ]; then
      step "batched inversion, float32" python benchmarks/bench_inversion.py --repeats 5 --precision float32
    fi
    step "batched inversion, glibc's allocator" env ZOO_CPU_ALLOCATOR=system python benchmarks/bench_inversion.py --repeats 3
    for method in encoder distilled; do
      for method_threads in 1 2; do
        step "feed-forward translation, $method, $method_threads threads" \
          python benchmarks/bench_encoder.py --method "$method" --threads "$method_threads" --repeats 3
      done
    done
    step "alignment" python benchmarks/bench_align.py --repeats 7 --threads "$threads"
  fi
  echo
  echo "# done $(date -u +%FT%TZ)"
}

run_all 2>&1 | tee "$out"
echo "written: $out" >&2
