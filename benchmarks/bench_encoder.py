"""Feed-forward translation with the shipped encoder or translator (issue 17): one image, and a folder of 100.

    python benchmarks/bench_encoder.py [--method encoder|distilled] [--threads 2] [--repeats 5]

Measures, in the zoo home of this checkout (the shipped emoji family and emoji-noto-encoder):
- start-up: `zoo --version` as a new process (Python, torch and zoo's imports);
- the whole command: `zoo translate --from emoji-noto --to emoji-twemoji --method encoder IMAGE` as a new process
  (Python's start-up, imports, loading both models and the encoder, the translation, writing the file);
- in process, after start-up: one image encoded and rendered by the target (layer-swapped at the recipe's level),
  and 100 images the same way in one batch; with --method distilled, one pass of emoji-noto-translator instead.
The issue's bars: the translation of one image well under 1 s after start-up; one command in a few seconds; a folder
of 100 in under a minute. Each figure is the median (min-max) of --repeats runs, the in-process ones after one warm-up
call; there is no baseline, so the figures depend on the machine's load and on --threads (say both when quoting).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from zoo.encoder import encode, encoder_for, load_encoder
from zoo.evaluation import held_out_inputs
from zoo.images import load_images
from zoo.registry import load
from zoo.translation import Renderer, translation_options
from zoo.translator import load_translator, translate_feed_forward, translator_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import Spread, add_repeats, alternating, describe_run  # noqa: E402


def timed(function, repeats: int) -> Spread:
    seconds, _ = alternating({"only": function}, repeats)
    return seconds["only"]


def process_seconds(arguments: list[str], threads: int, repeats: int) -> Spread:
    """A command as a new process, with `threads` threads like the in-process figures."""
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return timed(lambda: subprocess.run(arguments, check=True, capture_output=True, env=environment), repeats)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    add_repeats(parser, 5)
    parser.add_argument("--method", choices=("encoder", "distilled"), default="encoder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    files = held_out_inputs("emoji-noto", "emoji-twemoji")
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "zoo", "translate", "--from", "emoji-noto", "--to", "emoji-twemoji", "--method", args.method,
                   "--out", folder, "--force", str(files[0])]  # fmt: skip
        startup = process_seconds([sys.executable, "-m", "zoo", "--version"], args.threads, args.repeats)
        whole = process_seconds(command, args.threads, args.repeats)
    source, target = load("emoji-noto"), load("emoji-twemoji")
    size = source.generator.config.size
    one, hundred = load_images(files[:1], size), load_images(files[:100], size)
    if args.method == "distilled":
        translator = load_translator(translator_for(source, "emoji-twemoji"), base=source)

        def translate(images):
            return translate_feed_forward(translator, images, "emoji-twemoji")
    else:
        encoder = load_encoder(encoder_for(source), base=source)
        renderer = Renderer(source.generator, target.generator, translation_options("emoji-twemoji"))

        def translate(images):
            return renderer.render(encode(encoder, images), "const")

    with torch.no_grad():
        translate(one)  # warm-up: the first call pays for allocations and kernel choice
        single = timed(lambda: translate(one), args.repeats)
        batch = timed(lambda: translate(hundred), args.repeats)
    print(describe_run(args.repeats, f"method {args.method}"))
    print(f"| method | threads | `zoo --version` s | whole `zoo translate` of 1 image s | 1 image after start-up ms | {len(hundred)} images after start-up s |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.method} | {args.threads} | {startup.format()} | {whole.format()} | {single.scaled(1000).format('.1f')} | {batch.format()} |")


if __name__ == "__main__":
    main()
