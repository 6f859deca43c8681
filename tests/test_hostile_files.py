"""Files built to hurt the importer: size bombs, bad layouts, metadata bombs, broken weights, damaged safetensors.

Every file is made here, by hand where torch.save would refuse to write it; none is loaded by anything but zoo's own
readers. Each test names the defect it guards against (see docs/formats.md, "What importing refuses").
"""

import argparse
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import nvidia_pickles
import pytest
import torch
from conftest import ROSINALITY
from safetensors.torch import load_file, save_file
from test_importers import ADA_CONFIG, TF_CONFIG, random_networks

from zoo import importers
from zoo.checkpoint import read_info, save_model
from zoo.errors import ZooError
from zoo.importers import TRUNCATED, import_checkpoint, plain_metadata, read_checkpoint, torchfile, unpickle
from zoo.model import Generator

FIXTURE = ROSINALITY / "rosinality_small.pt"


def g_ema_of_fixture() -> dict:
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(FIXTURE, weights_only=True)["g_ema"]


def assert_refused(path: Path, *fragments: str):
    with pytest.raises(ZooError) as raised:
        read_checkpoint(path)
    text = str(raised.value)
    assert text.startswith(f"{path}: ") and "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, text


# ---------------------------------------------------------------------------------------------------------------------
# torch.save files written by hand: any storage declaration and any tensor layout


class Storage:
    def __init__(self, key: str, storage_type=torch.FloatStorage, numel: int = 4):
        self.key, self.storage_type, self.numel = key, storage_type, numel


class Tensor:
    """Pickles as torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...), whatever those are."""

    def __init__(self, storage: Storage, offset=0, size=(4,), stride=(1,)):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False, OrderedDict())


class TorchPickler(pickle.Pickler):
    def __init__(self, file, legacy: bool):
        super().__init__(file, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if not isinstance(obj, Storage):
            return None
        declared = ("storage", obj.storage_type, obj.key, "cpu", obj.numel)
        return (*declared, None) if self.legacy else declared


def torch_zip(path: Path, content, storages: dict[str, bytes]) -> Path:
    pickled = io.BytesIO()
    TorchPickler(pickled, legacy=False).dump(content)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickled.getvalue())
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
    return path


def torch_legacy(path: Path, content, storages: dict[str, tuple[int, bytes]]) -> Path:
    """torch.save's legacy layout: magic, protocol, system info, the object pickle, storage keys, then per storage
    its element count and bytes (`storages`: key -> (count written, bytes))."""
    out = io.BytesIO()
    for header in (importers.LEGACY_MAGIC_NUMBER, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, out, protocol=2)
    TorchPickler(out, legacy=True).dump(content)
    pickle.dump(list(storages), out, protocol=2)
    for count, data in storages.values():
        out.write(struct.pack("<q", count) + data)
    path.write_bytes(out.getvalue())
    return path


FLOATS = np.arange(4, dtype=np.float32).tobytes()

# name -> (tensor in g_ema["style.1.weight"], what the one-line refusal says)
BAD_LAYOUTS = {
    "zero-stride": (Tensor(Storage("0", numel=4), size=(10**9,), stride=(0,)), "repeats the 4 elements of its storage"),
    "zero-stride-2d": (Tensor(Storage("0", numel=4), size=(4, 10**8), stride=(1, 0)), "repeats the 4 elements"),
    "past-the-end": (Tensor(Storage("0", numel=4), size=(5,)), "reaches element 4 of a storage of 4"),
    "offset-past-the-end": (Tensor(Storage("0", numel=4), offset=3, size=(2,)), "reaches element 4"),
    "negative-stride": (Tensor(Storage("0", numel=4), offset=3, stride=(-1,)), "negative size, stride or offset"),
    "negative-offset": (Tensor(Storage("0", numel=4), offset=-1, size=(2,)), "negative size, stride or offset"),
    "negative-size": (Tensor(Storage("0", numel=4), size=(-4,)), "negative size, stride or offset"),
    "malformed-size": (Tensor(Storage("0", numel=4), size="4"), "malformed size, stride or offset"),
    "too-many-dims": (Tensor(Storage("0", numel=4), size=(1,) * 10**5, stride=(1,) * 10**5), "malformed size"),
    "huge-declared-storage": (Tensor(Storage("0", numel=10**12)), "storages declare more bytes than its"),
}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("case", sorted(BAD_LAYOUTS))
def test_tensor_layouts_are_checked_against_the_storage_before_anything_is_allocated(tmp_path, case, legacy):
    tensor, message = BAD_LAYOUTS[case]
    content = {"g_ema": {"style.1.weight": tensor}}
    if legacy:
        path = torch_legacy(tmp_path / f"{case}.pt", content, {"0": (4, FLOATS)})
    else:
        path = torch_zip(tmp_path / f"{case}.pt", content, {"0": FLOATS})
    assert_refused(path, message)


def test_storages_that_do_not_match_their_declaration(tmp_path):
    four = Storage("0", numel=4)
    assert_refused(torch_zip(tmp_path / "short.pt", {"g_ema": {"w": Tensor(four)}}, {"0": FLOATS[:8]}),
                   "storage 0 holds 8 bytes where its 4 elements need 16")
    assert_refused(torch_zip(tmp_path / "missing.pt", {"g_ema": {"w": Tensor(four)}}, {}),
                   "storage 0 is missing from the archive")
    as_double = Storage("0", torch.DoubleStorage, numel=4)
    assert_refused(torch_zip(tmp_path / "two-types.pt", {"g_ema": {"a": Tensor(four), "b": Tensor(as_double)}},
                             {"0": FLOATS}), "storage 0 is declared twice, with different types or sizes")
    assert_refused(torch_legacy(tmp_path / "count.pt", {"g_ema": {"w": Tensor(four)}}, {"0": (5, FLOATS)}),
                   "storage 0 is stored with a size other than its tensors'")
    assert_refused(torch_legacy(tmp_path / "cut.pt", {"g_ema": {"w": Tensor(four)}}, {"0": (4, FLOATS[:6])}),
                   "file is truncated (storage 0 ends early)")


def test_a_compressed_data_pickle_that_unpacks_past_the_file_size_is_refused(tmp_path):
    path = tmp_path / "zip-bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"g_ema": {}, "padding": bytes(50 * 2**20)}, protocol=2))
    assert path.stat().st_size < 2**20
    assert_refused(path, "its archive/data.pkl unpacks to more bytes than the whole file")


def test_many_tensors_over_one_storage_exhaust_the_budget_not_memory(tmp_path):
    storage = Storage("0", numel=4096)
    views = {f"w{i}": Tensor(storage, size=(4096,)) for i in range(2000)}  # 8 M elements from a 16 KB storage
    path = torch_zip(tmp_path / "views.pt", {"g_ema": views}, {"0": bytes(4 * 4096)})
    assert path.stat().st_size < 200_000
    assert_refused(path, "its tensors hold more elements than the file has bytes")


def test_one_tensor_under_many_names_is_refused(tmp_path):
    tensor = Tensor(Storage("0", numel=4))
    path = torch_zip(tmp_path / "aliases.pt", {"g_ema": {f"w{i}": tensor for i in range(3)}}, {"0": FLOATS})
    assert_refused(path, "g_ema.w1 and w0 are one tensor in the file")


def test_real_tensors_round_trip_through_the_hand_written_files(tmp_path):
    """The readers the refusals guard are the ones that read good files: a strided view comes back exactly."""
    storage = Storage("0", numel=4)
    content = {"g_ema": {"w": Tensor(storage, offset=1, size=(3,), stride=(1,))}}
    for path in (torch_zip(tmp_path / "ok.pt", content, {"0": FLOATS}),
                 torch_legacy(tmp_path / "ok-legacy.pt", content, {"0": (4, FLOATS)})):
        zipped = path.read_bytes()[:4] == importers.ZIP_MAGIC
        read = torchfile._read_torch_file(path, zipped=zipped)
        assert read["g_ema"]["w"].tolist() == [1.0, 2.0, 3.0]


# ---------------------------------------------------------------------------------------------------------------------
# NVIDIA pickles


def test_zero_stride_tensor_in_an_ada_pickle_is_refused_in_the_shared_rebuild(tmp_path):
    generator, discriminator = random_networks(ADA_CONFIG, seed=1)
    path = tmp_path / "zero-stride.pkl"
    path.write_bytes(nvidia_pickles.ada_pickle(
        generator, discriminator, exec_marker=tmp_path / "exec-marker", channel_base=16384, channel_max=16,
        plant=torch.zeros(1).expand(10**9),  # 4 GB if materialised; one float in the file
    ))
    assert_refused(path, "repeats the 1 elements of its storage")


class AbsurdArray:
    """Pickles like a numpy array whose constructor asks for 10**12 elements and whose state claims 10**12 more."""

    def __reduce__(self):
        state = (1, (10**6, 10**6), np.dtype(np.float32), False, b"\0" * 16)
        return unpickle._np_multiarray._reconstruct, (np.ndarray, (10**12,), b"b"), state


def test_tf_pickle_with_an_absurd_array_shape_is_refused_without_allocating(tmp_path):
    generator, discriminator = random_networks(TF_CONFIG, seed=2)
    path = tmp_path / "absurd.pkl"
    path.write_bytes(nvidia_pickles.tf_pickle(generator, discriminator, exec_marker=tmp_path / "exec-marker",
                                              plant=AbsurdArray()))
    assert_refused(path, "not a readable TensorFlow StyleGAN2 pickle")


def test_kwargs_that_would_take_forever_to_print_or_expand_are_refused_quickly(tmp_path):
    generator, discriminator = random_networks(TF_CONFIG, seed=2)
    bomb = nested_shared_list(60)  # repr() of it would never finish
    cases = {"label_size": "conditional model (label_size=[[[[", "mapping_lrmul": "its mapping_lrmul is [[[[",
             "resample_kernel": "its resample_kernel [[[["}
    for key, message in cases.items():
        path = tmp_path / f"{key}.pkl"
        path.write_bytes(nvidia_pickles.tf_pickle(generator, discriminator, exec_marker=tmp_path / "exec-marker",
                                                  static_overrides={key: bomb}))
        started = time.perf_counter()
        assert_refused(path, message)
        assert time.perf_counter() - started < 10
    path = tmp_path / "long-kernel.pkl"
    path.write_bytes(nvidia_pickles.tf_pickle(generator, discriminator, exec_marker=tmp_path / "exec-marker",
                                              static_overrides={"resample_kernel": [1] * 10**6}))
    assert_refused(path, "its resample_kernel [1, 1, 1")


# ---------------------------------------------------------------------------------------------------------------------
# Metadata


def nested_shared_list(depth: int):
    """2**depth leaves when expanded, depth+1 objects when pickled (each level holds the one below twice)."""
    value = ["leaf"]
    for _ in range(depth):
        value = [value, value]
    return value


def test_metadata_bomb_in_rosinality_args_stays_small_in_the_registry(tmp_path, zoo_home):
    path = tmp_path / "bomb.pt"
    args = argparse.Namespace(size=32, text="x" * 10**6, bomb=nested_shared_list(60))
    torch.save({"g_ema": g_ema_of_fixture(), "args": args}, path)
    assert path.stat().st_size < 2 * FIXTURE.stat().st_size
    started = time.perf_counter()
    entry = import_checkpoint(path, "bombed")
    assert time.perf_counter() - started < 30
    assert (zoo_home / "registry.toml").stat().st_size < 300_000
    args = entry["lineage"]["details"]["args"]
    assert args["size"] == 32
    assert args["text"] == "x" * importers.METADATA_MAX_STRING + TRUNCATED
    assert TRUNCATED in json.dumps(args["bomb"], ensure_ascii=False)


def test_plain_metadata_bounds_nodes_depth_strings_numbers_and_arrays():
    copied = plain_metadata({
        "big_int": 10**5000,
        "nan": float("nan"),
        "array": np.zeros((1000, 1000)),
        "small": np.arange(3),
        "object": object(),
        (1, 2): "tuple key",
    })
    assert copied == {"big_int": "<int of 16610 bits>", "nan": "nan", "array": "<ndarray of shape [1000, 1000]>",
                      "small": [0, 1, 2], "object": "<object>", "<tuple>": "tuple key"}
    depth, node = 0, plain_metadata(nested_shared_list(40))
    assert len(json.dumps(node)) < 200_000
    while isinstance(node, list):
        node, depth = node[0], depth + 1
    assert node == TRUNCATED and depth == importers.METADATA_MAX_DEPTH
    wide = plain_metadata({"wide": list(range(10**6)), "after": 1})
    *kept, marker = wide["wide"]
    assert kept == list(range(len(kept))) and len(kept) < importers.METADATA_MAX_NODES
    assert marker == f"{10**6 - len(kept)} more items{TRUNCATED}"
    assert wide["…"] == f"1 more entries{TRUNCATED}"
    many_strings = plain_metadata(["y" * 999] * 1000)
    assert sum(map(len, many_strings)) <= importers.METADATA_MAX_CHARS + 100


def test_a_zoo_file_whose_lineage_is_huge_is_imported_with_a_bounded_copy(tmp_path, tiny_config, zoo_home):
    path = tmp_path / "big-lineage.safetensors"
    save_model(path, Generator(tiny_config).eval(), domain="d", family="d",
               lineage={"steps": [{"note": "n" * 100, "i": i} for i in range(50_000)]})
    entry = import_checkpoint(path, "bounded")
    assert len(json.dumps(entry["lineage"])) < 200_000
    assert entry["lineage"]["source_lineage"]["steps"][-1].endswith(TRUNCATED)


# ---------------------------------------------------------------------------------------------------------------------
# Weights that are not numbers


def rosinality_with(tmp_path: Path, name: str, value: float) -> Path:
    g_ema = g_ema_of_fixture()
    g_ema[name] = g_ema[name].clone()
    g_ema[name].view(-1)[3] = value
    path = tmp_path / f"broken-{name}.pt"
    torch.save({"g_ema": g_ema}, path)
    return path


def test_nan_and_inf_weights_are_refused_naming_the_tensor_in_every_format(tmp_path, tiny_config, zoo_home):
    paths = {
        "g_ema.style.1.weight": rosinality_with(tmp_path, "style.1.weight", float("nan")),
        "g_ema.convs.0.conv.weight": rosinality_with(tmp_path, "convs.0.conv.weight", float("inf")),
    }
    generator, discriminator = random_networks(ADA_CONFIG, seed=1)
    with torch.no_grad():
        generator.style[1].bias[0] = float("-inf")
        discriminator.final_linear[1].bias[0] = float("nan")
    ada = tmp_path / "broken-ada.pkl"
    ada.write_bytes(nvidia_pickles.ada_pickle(generator, discriminator, exec_marker=tmp_path / "exec-marker",
                                              channel_base=16384, channel_max=16))
    paths["g_ema.style.1.bias"] = ada
    generator, discriminator = random_networks(TF_CONFIG, seed=2)
    generator.latent_avg[0] = float("nan")
    tf = tmp_path / "broken-tf.pkl"
    tf.write_bytes(nvidia_pickles.tf_pickle(generator, discriminator, exec_marker=tmp_path / "exec-marker"))
    paths["latent_avg"] = tf
    generator = Generator(tiny_config).eval()
    with torch.no_grad():
        generator.to_rgb1.bias[0, 0] = float("nan")
    paths["g_ema.to_rgb1.bias"] = tmp_path / "broken.safetensors"
    save_model(paths["g_ema.to_rgb1.bias"], generator, domain="d", family="d", lineage={})
    for tensor, path in paths.items():
        with pytest.raises(ZooError, match=rf"^{path}: tensor {tensor} holds 1 NaN or infinite values"):
            import_checkpoint(path, "broken")
    assert not (zoo_home / "registry.toml").exists()


# ---------------------------------------------------------------------------------------------------------------------
# zoo .safetensors files that are not what zoo writes


def rewritten(path: Path, target: Path, edit) -> Path:
    """A copy of a zoo checkpoint with its tensors edited by `edit(tensors)` and its metadata kept."""
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(target), metadata=read_info_metadata(path))
    return target


def read_info_metadata(path: Path) -> dict:
    length = int.from_bytes(path.read_bytes()[:8], "little")
    return json.loads(path.read_bytes()[8:8 + length])["__metadata__"]


def with_header(path: Path, target: Path, header_text: str) -> Path:
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    text = header_text.encode() + b" " * (-len(header_text.encode()) % 8)
    target.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + length:])
    return target


@pytest.fixture
def zoo_file(tmp_path, tiny_config):
    path = tmp_path / "good.safetensors"
    save_model(path, Generator(tiny_config).eval(), domain="d", family="d", lineage={"transform": "test"})
    return path


def test_non_float32_tensors_are_refused_naming_the_file_and_tensor(zoo_file, tmp_path):
    for dtype, code in ((torch.int64, "I64"), (torch.float16, "F16"), (torch.bool, "BOOL")):
        def edit(tensors, dtype=dtype):
            tensors["latent_avg"] = tensors["latent_avg"].to(dtype)
        path = rewritten(zoo_file, tmp_path / f"{code}.safetensors", edit)
        with pytest.raises(ZooError, match=rf"^{path}: tensor latent_avg is {code}, but zoo checkpoints hold float32"):
            import_checkpoint(path, "typed")


def test_damaged_safetensors_headers_give_one_line_errors(zoo_file, tmp_path):
    length = int.from_bytes(zoo_file.read_bytes()[:8], "little")
    header = json.loads(zoo_file.read_bytes()[8:8 + length])
    name = "latent_avg"
    text = json.dumps(header)
    duplicate = text[:-1] + f', "{name}": ' + json.dumps(header[name]) + "}"
    huge = dict(header, **{name: dict(header[name], data_offsets=[0, 2**62])})
    metadata = header["__metadata__"]
    cases = {
        "duplicate": (duplicate, f"its header names '{name}' twice"),
        "huge-offsets": (json.dumps(huge), "not a readable safetensors file"),
        "metadata-not-strings": (json.dumps(dict(header, __metadata__=dict(metadata, **{"zoo.domain": {"a": 1}}))),
                                 "not a readable safetensors file"),
        "deep-lineage": (json.dumps(dict(header, __metadata__=dict(metadata, **{"zoo.lineage": "[" * 10**5 + "]" * 10**5}))),
                         "damaged zoo metadata (RecursionError"),
        "list-lineage": (json.dumps(dict(header, __metadata__=dict(metadata, **{"zoo.lineage": "[1]"}))),
                         "zoo.lineage is a JSON list, not an object"),
    }
    for case, (header_text, message) in cases.items():
        path = with_header(zoo_file, tmp_path / f"{case}.safetensors", header_text)
        with pytest.raises(ZooError) as raised:
            read_info(path)
        assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value), (case, str(raised.value))
    claims = tmp_path / "claims-a-terabyte.safetensors"
    claims.write_bytes(struct.pack("<Q", 2**40) + b'{"' + b"x" * 100)
    with pytest.raises(ZooError, match="safetensors header runs past the end"):
        import_checkpoint(claims, "claims")


# ---------------------------------------------------------------------------------------------------------------------
# Memory


# Peak resident memory during the read (VmHWM, reset just before it through /proc/self/clear_refs) minus the resident
# memory at that moment, after PyTorch's one-time set-up of its meta device (about 160 MB, whatever the file), so
# what is measured grows with the file.
MEASURE = textwrap.dedent("""
    import sys
    import torch
    from zoo.errors import ZooError
    from zoo.importers import read_checkpoint
    from zoo.model import Generator, ModelConfig

    def status(field):
        with open("/proc/self/status") as lines:
            return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field + ":"))

    with torch.device("meta"):
        Generator(ModelConfig(size=8, style_dim=8, n_mlp=1, channels={4: 8, 8: 8}))
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak restarts from the current resident size
    before = status("VmRSS")
    try:
        read_checkpoint(sys.argv[1])
        outcome = "read"
    except ZooError:
        outcome = "refused"
    print(outcome, status("VmHWM") - before)
""")

# The bound docs/formats.md ("Memory") promises: peak growth <= 4 x the file's size + 32 MB.
MEMORY_FACTOR, MEMORY_OVERHEAD = 4, 32 * 2**20


def peak_growth(path: Path) -> tuple[str, int]:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True,
                            env=environment, timeout=300)
    outcome, growth = result.stdout.split()
    return outcome, int(growth)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures resident memory through Linux's /proc")
def test_peak_memory_of_reading_stays_within_a_small_multiple_of_the_file(tmp_path):
    generator, discriminator = random_networks(ADA_CONFIG, seed=1)
    ada_bomb = tmp_path / "ada-bomb.pkl"
    ada_bomb.write_bytes(nvidia_pickles.ada_pickle(
        generator, discriminator, exec_marker=tmp_path / "exec-marker", channel_base=16384, channel_max=16,
        plant=torch.zeros(1).expand(10**9),
    ))
    ada = tmp_path / "ada.pkl"
    ada.write_bytes(nvidia_pickles.ada_pickle(generator, discriminator, exec_marker=tmp_path / "exec-marker",
                                              channel_base=16384, channel_max=16))
    storage = Storage("0", numel=4096)
    files = {
        FIXTURE: "read",
        ada: "read",
        ada_bomb: "refused",
        torch_zip(tmp_path / "zero-stride.pt", {"g_ema": {"w": BAD_LAYOUTS["zero-stride"][0]}}, {"0": FLOATS}): "refused",
        torch_legacy(tmp_path / "huge.pt", {"g_ema": {"w": BAD_LAYOUTS["huge-declared-storage"][0]}},
                     {"0": (4, FLOATS)}): "refused",
        torch_zip(tmp_path / "views.pt", {"g_ema": {f"w{i}": Tensor(storage, size=(4096,)) for i in range(2000)}},
                  {"0": bytes(4 * 4096)}): "refused",
    }
    for path, expected in files.items():
        outcome, growth = peak_growth(path)
        assert outcome == expected, path.name
        assert growth <= MEMORY_FACTOR * path.stat().st_size + MEMORY_OVERHEAD, (path.name, growth)
