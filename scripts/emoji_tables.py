"""Markdown tables from the JSON files that scripts/emoji-results.sh writes (for docs/results.md).

    python scripts/emoji_tables.py RESULTS_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def table_one(results: Path) -> str:
    """Each variant's distance to the base, one row per style (the paper's Table I)."""
    files = sorted(results.glob("table1-*.json"))
    variants = [model["name"].split(" (")[0] for model in read(files[0])["models"]][1:]
    rows = []
    for path in files:
        data = read(path)
        rows.append([path.stem.removeprefix("table1-"), *(f"{value:.4f}" for value in data["matrix"][0][1:])])
    label = read(files[0])["label"]
    return f"Distance to the base, {label}, {read(files[0])['samples']} shared z:\n\n" + table(["style", *variants], rows)


def family_matrix(results: Path) -> str:
    data = read(results / "family.json")
    names = [model["name"].removeprefix("emoji-") for model in data["models"]]
    rows = [[name, *(f"{value:.3f}" for value in row)] for name, row in zip(names, data["matrix"])]
    return f"{data['label']}, {data['samples']} shared z:\n\n" + table(["", *names], rows)


def table_two(results: Path) -> str:
    """Per style and swap level: paired distance and top-1 retrieval against the do-nothing baseline, LPIPS_s/_d."""
    evaluations = read(results / "table2.json")
    rows = []
    for item in evaluations:
        paired = item["paired"]
        rows.append([
            item["target"].removeprefix("emoji-"), str(item["translation"]["swap"]),
            f"{paired['distance']:.4f}", f"{paired['baseline_distance']:.4f}",
            f"{paired['top1']:.0%}", f"{paired['baseline_top1']:.0%}",
            f"{item['similarity']:.4f}", f"{item['diversity']:.4f}", f"{item['style_diversity']:.4f}",
        ])  # fmt: skip
    first = evaluations[0]
    intro = (f"{len(first['inputs'])} held-out noto emoji, {first['paired']['candidates']} candidates per style; distances: "
             f"{first['label']}; inversion: {first['inversion']['method']}, {first['inversion']['steps']} steps, loss "
             f"{first['inversion']['loss']}.\n\n")  # fmt: skip
    header = ["style", "swap l", "distance to truth", "do-nothing distance", "top-1", "do-nothing top-1",
              "LPIPS_s analogue", "LPIPS_d analogue", "style diversity"]  # fmt: skip
    return intro + table(header, rows)


def table_three(results: Path) -> str:
    rows = []
    for method in ("bounded", "projection"):
        for precision in ("auto", "float32"):
            data = read(results / f"table3-{method}-{precision}.json")
            inversion = data["inversion"]
            rows.append([method, inversion["precision"], str(inversion["steps"]), f"{data['reconstruction_ssim']:.4f}",
                         f"{inversion['seconds']:.0f}"])  # fmt: skip
    return table(["inversion", "synthesis precision", "steps", "reconstruction SSIM", "inversion wall time s"], rows)


def main() -> None:
    results = Path(sys.argv[1])
    sections = {"Table I": table_one, "Model distances in the family": family_matrix, "Table II": table_two,
                "Table III": table_three}  # fmt: skip
    for title, make in sections.items():
        print(f"### {title}\n\n{make(results)}\n")


if __name__ == "__main__":
    main()
