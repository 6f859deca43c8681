"""The importers' restricted unpicklers against a range of hostile globals and opcodes, in every container zoo reads
(a bare pickle, a rosinality torch file, an ada or TF snapshot): each is refused with one line naming the file and the
global, and nothing runs."""

import builtins
import importlib
import os
import pathlib
import pickle
import re
import subprocess

import pytest
import torch
from test_importers import write_ada_pickle, write_tf_pickle

from zoo.errors import ZooError
from zoo.importers import read_checkpoint


class Calls:
    """Unpickles by calling function(*args), as a hostile file would."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args

    def __call__(self, *args):
        raise AssertionError("only pickled")


def hostile_objects(marker: pathlib.Path) -> dict[str, Calls]:
    """name -> an object whose unpickling would create `marker` (the name is the global the file references)."""
    touch = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    return {
        "builtins.eval": Calls(builtins.eval, touch),
        "builtins.exec": Calls(builtins.exec, touch),
        "builtins.getattr": Calls(Calls(builtins.getattr, pathlib.Path(marker), "touch")),
        "importlib.import_module": Calls(importlib.import_module, "antigravity"),
        "subprocess.Popen": Calls(subprocess.Popen, ["touch", str(marker)]),
        "subprocess.check_output": Calls(subprocess.check_output, ["touch", str(marker)]),
        "subprocess.run": Calls(subprocess.run, ["touch", str(marker)]),
        "posix.system": Calls(os.system, f"touch {marker}"),
    }


def containers(directory: pathlib.Path, name: str, hostile) -> list[pathlib.Path]:
    bare = directory / f"{name}.pkl"
    bare.write_bytes(pickle.dumps(hostile, protocol=4))
    rosinality = directory / f"{name}.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(2, 2)}, "args": hostile}, rosinality)
    legacy = directory / f"{name}-legacy.pt"
    torch.save({"g_ema": {}, "latent_avg": hostile}, legacy, _use_new_zipfile_serialization=False)
    (directory / name).mkdir()
    return [bare, rosinality, legacy, write_ada_pickle(directory / name, plant=hostile),
            write_tf_pickle(directory / name, plant=hostile)]  # fmt: skip


def assert_refused(path: pathlib.Path, global_name: str) -> None:
    """Refused, naming the file and the global (torch.save's protocol 2 writes Python 2's module names, e.g.
    __builtin__.eval and commands.Popen, so only the function's own name is matched)."""
    with pytest.raises(ZooError) as error:
        read_checkpoint(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: not a StyleGAN2 checkpoint zoo can read"), message
    assert re.search(rf"found a pickle referencing [\w.]*\.{global_name.rsplit('.', 1)[1]}\)", message), message


@pytest.mark.parametrize("name", list(hostile_objects(pathlib.Path("marker"))))
def test_hostile_globals_are_refused_in_every_container(tmp_path, name):
    marker = tmp_path / "pwned"
    for path in containers(tmp_path, name.replace(".", "-"), hostile_objects(marker)[name]):
        assert_refused(path, name)
        assert not marker.exists(), path.name
    assert not list(tmp_path.rglob("exec-marker"))


ADA = b"\x80\x02(ctorch_utils.persistence\n_reconstruct_persistent_obj\n"  # an ada snapshot's first global
TF = b"\x80\x02(cdnnlib.tflib.network\nNetwork\n"  # a TF snapshot's first global


def opcode_payloads(marker: pathlib.Path) -> dict[str, tuple[bytes, str]]:
    """Hand-written opcode sequences (each pushes one value) -> the global each would resolve."""
    command = f"touch {marker}".encode()
    return {
        "INST": (b"(S'" + command + b"'\nios\nsystem\n", "os.system"),
        "OBJ": (b"(cos\nsystem\nS'" + command + b"'\no", "os.system"),
        "BUILD": (b"cdnnlib.util\nAnything\n)\x81}S'x'\ncbuiltins\nexec\nsb", "builtins.exec"),
        "STACK_GLOBAL": (b"\x8c\x08builtins\x8c\x04eval\x93S'1'\n\x85R", "builtins.eval"),
        "REDUCE": (b"csubprocess\ngetoutput\nS'" + command + b"'\n\x85R", "subprocess.getoutput"),
    }


@pytest.mark.parametrize("opcode", ["INST", "OBJ", "BUILD", "STACK_GLOBAL", "REDUCE"])
@pytest.mark.parametrize("prefix", [ADA, TF], ids=["ada", "tf"])
def test_hostile_opcodes_are_refused_inside_nvidia_snapshots(tmp_path, opcode, prefix):
    marker = tmp_path / "pwned"
    payload, global_name = opcode_payloads(marker)[opcode]
    path = tmp_path / "snapshot.pkl"
    path.write_bytes(prefix + payload + b"t.")
    assert_refused(path, global_name)
    assert not marker.exists()

