"""What a run writes as it goes besides snapshots: `metrics.jsonl` and sample grids `samples/NNNNNN.png`."""

from __future__ import annotations

import json
from pathlib import Path

from ..files import atomic_write_bytes
from ..images import grid, save_image
from ..model import Generator
from ..sampling import sample

METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
SAMPLE_GRID_IMAGES = 16


class MetricsLog:
    """metrics.jsonl: one JSON object per logged step."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records past `step` (logged after the snapshot a run resumes from), so none is repeated."""
        if not self.path.is_file():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
        if len(kept) != len(lines):
            atomic_write_bytes(self.path, "".join(kept).encode("utf-8"))


def write_samples(run_dir: Path, step: int, generator: Generator, seed: int, provenance: dict | None = None) -> Path:
    """A grid of G_ema's images for a fixed set of latents (so grids of successive steps are comparable); the PNG
    records `provenance` with the step and seed."""
    images = sample(generator, SAMPLE_GRID_IMAGES, seed=seed)
    return save_image(grid(images), Path(run_dir) / SAMPLES_DIR / f"{step:06d}.png", force=True,
                      provenance={**(provenance or {}), "step": step, "seed": seed})  # fmt: skip
