"""What zoo keeps of metadata read from a file: a bounded, plain-JSON copy (`plain_metadata`)."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

# What plain_metadata keeps of one value (see docs/formats.md, "Metadata from imported files").
METADATA_MAX_NODES = 2000
METADATA_MAX_DEPTH = 12
METADATA_MAX_STRING = 1000
METADATA_MAX_CHARS = 100_000
METADATA_MAX_ARRAY = 64
TRUNCATED = "…(truncated by zoo)"


def plain_metadata(value):
    """A bounded, plain-JSON copy of metadata read from a file (rosinality args, NVIDIA kwargs, a source's lineage).

    Dicts get str keys; tuples and sets become lists; numpy and torch scalars and small arrays become Python numbers
    and lists; anything else becomes "<TypeName>". The copy holds at most METADATA_MAX_NODES values, nests at most
    METADATA_MAX_DEPTH deep, and keeps at most METADATA_MAX_STRING characters per string and METADATA_MAX_CHARS in
    all; past a limit the rest is cut and marked with TRUNCATED, so a file whose metadata repeats one shared list
    a billion times costs a few kilobytes, never the registry's size or `zoo list`'s time.
    """
    return _MetadataCopy().copy(value, 0)


def _shown(value, width: int = 80) -> str:
    """A value from a file as a short text for a message (repr of a hostile value could take forever)."""
    text = json.dumps(plain_metadata(value), ensure_ascii=False)
    return text if len(text) <= width else text[:width] + "…"


class _MetadataCopy:
    def __init__(self):
        self.nodes_left = METADATA_MAX_NODES
        self.chars_left = METADATA_MAX_CHARS

    def copy(self, value, depth: int):
        self.nodes_left -= 1
        if isinstance(value, argparse.Namespace):
            value = vars(value)
        if isinstance(value, (np.ndarray, np.generic, torch.Tensor)):
            shape = list(value.shape)
            if math.prod(shape) > METADATA_MAX_ARRAY:
                return f"<{type(value).__name__} of shape {shape}>"
            value = value.tolist()
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value if abs(value) < 2**63 else f"<int of {value.bit_length()} bits>"
        if isinstance(value, float):
            return value if math.isfinite(value) else repr(value)
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, (dict, list, tuple, set, frozenset)):
            return self.container(value, depth)
        return f"<{type(value).__name__}>"

    def text(self, value: str) -> str:
        kept = value[: max(0, min(METADATA_MAX_STRING, self.chars_left))]
        self.chars_left -= len(kept)
        return kept if len(kept) == len(value) else kept + TRUNCATED

    def key(self, key) -> str:
        if isinstance(key, str):
            return self.text(key)
        return str(key) if key is None or isinstance(key, (bool, int, float)) and abs(key) < 2**63 else f"<{type(key).__name__}>"

    def container(self, value, depth: int):
        is_dict = isinstance(value, dict)
        if depth >= METADATA_MAX_DEPTH:
            return TRUNCATED
        copied = {} if is_dict else []
        for count, item in enumerate(value.items() if is_dict else value):
            if self.nodes_left <= 0 or self.chars_left <= 0:
                left = f"{len(value) - count} more {'entries' if is_dict else 'items'}{TRUNCATED}"
                if is_dict:
                    copied["…"] = left
                else:
                    copied.append(left)
                break
            if is_dict:
                copied[self.key(item[0])] = self.copy(item[1], depth + 1)
            else:
                copied.append(self.copy(item, depth + 1))
        return copied
