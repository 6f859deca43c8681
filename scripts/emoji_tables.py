"""Markdown tables from the JSON files that scripts/emoji-results.sh writes (for docs/results.md).

    python scripts/emoji_tables.py RESULTS_DIR
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def table_one(results: Path) -> str:
    """Each variant's distance to the base, one row per style (the paper's Table I): FT, FC-FT and FC-FT-LS at every
    swap level the JSON holds (`zoo distance-matrix --variants` makes every level of the models' resolution)."""
    files = sorted(results.glob("table1-*.json"))
    if not files:
        raise SystemExit(f"{results}: no table1-STYLE.json; make them with scripts/emoji-results.sh")
    variants = {path: [model["name"].split(" (")[0] for model in read(path)["models"]][1:] for path in files}
    columns = variants[files[0]]
    for path, names in variants.items():
        if names != columns:
            raise SystemExit(f"{path}: variants {', '.join(names)}, where {files[0].name} has {', '.join(columns)}; "
                             "make every table1-STYLE.json with the same models (scripts/emoji-results.sh)")  # fmt: skip
    rows = [[path.stem.removeprefix("table1-"), *(f"{value:.4f}" for value in read(path)["matrix"][0][1:])] for path in files]
    first = read(files[0])
    return f"Distance to the base, {first['label']}, {first['samples']} shared z:\n\n" + table(["style", *columns], rows)


def family_matrix(results: Path) -> str:
    data = read(results / "family.json")
    names = [model["name"].removeprefix("emoji-") for model in data["models"]]
    rows = [[name, *(f"{value:.3f}" for value in row)] for name, row in zip(names, data["matrix"])]
    return f"{data['label']}, {data['samples']} shared z:\n\n" + table(["", *names], rows)


def table_two(results: Path, name: str = "table2.json") -> str:
    """Per style and swap level: paired distance and top-1 retrieval against the do-nothing and colour-transfer
    baselines, LPIPS_s/_d analogues and style diversity."""
    evaluations = read(results / name)
    rows = []
    for item in evaluations:
        paired = item["paired"]
        rows.append([
            item["target"].removeprefix("emoji-"), str(item["translation"]["swap"]),
            f"{paired['distance']:.4f}", f"{paired['baseline_distance']:.4f}", number(paired.get("colour_distance"), ".4f"),
            f"{paired['top1']:.0%}", f"{paired['baseline_top1']:.0%}", number(paired.get("colour_top1"), ".0%"),
            f"{item['similarity']:.4f}", f"{item['diversity']:.4f}", f"{item['style_diversity']:.4f}",
        ])  # fmt: skip
    first = evaluations[0]
    levels = ", ".join(str(level) for level in sorted({item["translation"]["swap"] for item in evaluations}))
    intro = (f"{len(first['inputs'])} held-out noto emoji, {first['paired']['candidates']} candidates per style; swap levels "
             f"l = {levels}; distances: {first['label']}; {method(first['inversion'])}.\n\n")  # fmt: skip
    header = ["style", "swap l", "distance to truth", "do-nothing distance", "colour-transfer distance", "top-1",
              "do-nothing top-1", "colour-transfer top-1", "LPIPS_s analogue", "LPIPS_d analogue", "style diversity"]  # fmt: skip
    return intro + table(header, rows)


def number(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def method(inversion: dict) -> str:
    if inversion["method"] == "distilled":
        return "translation: the family's distilled translator, one forward pass (nothing inverted)"
    return f"inversion: {inversion['method']}, {inversion['steps']} steps, loss {inversion['loss']}"


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
                "Table II, the family's default: distilled": partial(table_two, name="table2-distilled.json"),
                "Table III": table_three}  # fmt: skip
    for title, make in sections.items():
        print(f"### {title}\n\n{make(results)}\n")


if __name__ == "__main__":
    main()
