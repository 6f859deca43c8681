"""Every environment variable zoo reads, with one line each: `zoo --help` shows this list, and docs/environment.md
says more about each (tests/test_cli_conventions.py checks that no variable the code reads is missing from either)."""

import os
import textwrap

VARIABLES = {
    "ZOO_HOME": "the zoo home (checkpoints/, registry.toml, runs/); default: the checkout, else the user data folder",
    "ZOO_OFFLINE": "1: never download (zoo pull and zoo import URL fail at once, naming the file to fetch by hand)",
    "ZOO_LOAD_PLUGINS": "comma-separated plugin entry points or distributions to load (empty: none); default: all",
    "ZOO_STRICT_PLUGINS": "1: a plugin that fails to load raises instead of being reported and skipped",
    "ZOO_LPIPS_BACKBONE_DIR": "folder holding the LPIPS backbone weights (default: torch's hub cache, TORCH_HOME)",
    "ZOO_FID_WEIGHTS": "the Inception weights file of FID (default: torch's hub cache, TORCH_HOME)",
    "ZOO_CPU_ALLOCATOR": "system: leave glibc's malloc settings as they are (zoo tunes them for big tensors)",
    "ZOO_TEST_FILE_URLS": "1: allow file: URLs as download sources (zoo's own tests only)",
    "HF_ENDPOINT": "the Hugging Face Hub's address for zoo push and zoo pull hf:// (default: huggingface.co)",
    "HF_HUB_OFFLINE": "1: zoo pull hf:// uses only the Hub's local cache (as ZOO_OFFLINE does)",
    "TORCH_HOME": "torch's cache; its hub/checkpoints folder is where LPIPS and FID weights are looked for",
    "RANK, WORLD_SIZE, LOCAL_RANK": "set by torchrun: training runs as one of several processes (--gpus)",
    "COLUMNS": "the width tables and help are laid out for (never cut: cells wrap); NO_COLOR=1 turns colour off",
}


def epilog() -> str:
    """The list for `zoo --help`, within 80 columns (click keeps the lines of a paragraph after a \\b line as they are)."""
    lines = []
    for name, text in VARIABLES.items():
        lines += [name, *textwrap.wrap(text, 72, initial_indent="    ", subsequent_indent="    ")]
    return "Environment variables (docs/environment.md):\n\n\b\n" + "\n".join(lines)


def offline() -> bool:
    """ZOO_OFFLINE=1: never download."""
    return os.environ.get("ZOO_OFFLINE", "") not in ("", "0")
