"""Hostile and broken input at the `zoo` command's boundary: the machine failing (read-only or full disk, names too
long, out of memory) is one line and exit code 2, a bug keeps its traceback; many inputs never share an output file;
absurd sizes are refused before any work."""

import errno
import math
import os
import sys
import tomllib

import numpy as np
import pytest
import torch
from conftest import ROSINALITY, save_samples
from PIL import Image
from safetensors import SafetensorError

from zoo import load
from zoo.cli import main
from zoo.demo import DemoSettings
from zoo.distance import MAX_SAMPLES, distance_matrix, load_named
from zoo.errors import ZooError, environment_problem
from zoo.images import named_inputs
from zoo.inversion import InversionSettings, invert_in_batches
from zoo.metrics import get_metric
from zoo.sampling import sample
from zoo.translation import (
    MAX_STYLES,
    Renderer,
    TranslationJob,
    TranslationOptions,
    prepare_translation,
    translate_multimodal,
)

FIXTURE = ROSINALITY / "rosinality_small.pt"


def run_zoo(monkeypatch, capsys, *args):
    """`zoo ARGS` in this process (so failures can be injected): (exit code, stderr)."""
    monkeypatch.setenv("ZOO_CPU_ALLOCATOR", "system")
    monkeypatch.setattr(sys, "argv", ["zoo", *map(str, args)])
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, capsys.readouterr().err


def assert_one_line(code, stderr, *fragments):
    """Exit code 2 and the error as the last line of stderr (after any progress notes), one line, no traceback."""
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("zoo: error: ") and "Traceback" not in stderr, stderr
    assert sum(line.startswith("zoo: error: ") for line in lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def installed(zoo_home) -> dict:
    registry = zoo_home / "registry.toml"
    return tomllib.loads(registry.read_text()).get("domains", {}) if registry.exists() else {}


def leftovers(zoo_home) -> list[str]:
    checkpoints = zoo_home / "checkpoints"
    return sorted(path.name for path in checkpoints.iterdir()) if checkpoints.exists() else []


# ---------------------------------------------------------------------------------------------------------------------
# The machine failing


@pytest.mark.parametrize(
    "code, words",
    [(errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied"), (errno.ENOSPC, "no space left"),
     (errno.EDQUOT, "quota"), (errno.ENAMETOOLONG, "file name too long"), (errno.ELOOP, "symbolic links")],
)  # fmt: skip
def test_a_failing_disk_is_one_line_naming_the_path_and_leaves_nothing(monkeypatch, capsys, zoo_home, code, words):
    def refuse(*args, dir=None, **kwargs):
        raise OSError(code, os.strerror(code), str(dir))

    monkeypatch.setattr("zoo.files.tempfile.mkstemp", refuse)
    exit_code, stderr = run_zoo(monkeypatch, capsys, "import", FIXTURE, "--name", "tiny")
    assert_one_line(exit_code, stderr, str(zoo_home / "checkpoints"), words)
    assert "tiny" not in installed(zoo_home) and leftovers(zoo_home) == []


def test_a_lock_the_zoo_home_cannot_hold_is_one_line(monkeypatch, capsys, zoo_home):
    def read_only(lock, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", lock.lock_file)

    monkeypatch.setattr("filelock.BaseFileLock.acquire", read_only)
    exit_code, stderr = run_zoo(monkeypatch, capsys, "import", FIXTURE, "--name", "tiny")
    assert_one_line(exit_code, stderr, "registry.toml.lock", "read-only file system", "ZOO_HOME")


def test_safetensors_running_out_of_space_is_one_line(monkeypatch, capsys, zoo_home):
    def full(*args, **kwargs):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })')

    monkeypatch.setattr("zoo.checkpoint.save_file", full)
    exit_code, stderr = run_zoo(monkeypatch, capsys, "import", FIXTURE, "--name", "tiny")
    assert_one_line(exit_code, stderr, "no space left on device", "free some space")
    assert "tiny" not in installed(zoo_home) and leftovers(zoo_home) == []


def test_an_output_name_too_long_for_the_file_system_is_one_line(monkeypatch, capsys, tmp_path):
    run_zoo(monkeypatch, capsys, "import", FIXTURE, "--name", "tiny")
    too_long = tmp_path / ("a" * 300 + ".png")  # real, not injected: every common file system stops at 255 bytes
    exit_code, stderr = run_zoo(monkeypatch, capsys, "sample", "tiny", "--n", "1", "--out", too_long)
    assert_one_line(exit_code, stderr, "file name too long", "aaaa")
    assert list(tmp_path.glob("*.png")) == []


def test_a_bug_keeps_its_traceback(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise OSError(errno.ENOENT, "No such file or directory", "/somewhere/zoo/expected")

    monkeypatch.setattr("zoo.cli.models.import_checkpoint", broken)
    with pytest.raises(FileNotFoundError):
        run_zoo(monkeypatch, capsys, "import", FIXTURE, "--name", "tiny")
    monkeypatch.setattr("zoo.cli.models.import_checkpoint", lambda *args, **kwargs: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run_zoo(monkeypatch, capsys, "import", FIXTURE, "--name", "tiny")


def test_environment_problems_other_than_files():
    assert "decompression bomb" in environment_problem(Image.DecompressionBombError("Image size (1 pixels) exceeds"))
    allocator = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                             "you tried to allocate 100 bytes. Error code 12 (Cannot allocate memory)")  # fmt: skip
    assert environment_problem(allocator).startswith("out of memory (DefaultCPUAllocator: can't allocate memory")
    assert "lower --batch" in environment_problem(MemoryError())
    assert "check the file" in environment_problem(SafetensorError("Error while deserializing header: HeaderTooLarge"))
    assert environment_problem(RuntimeError("shape mismatch")) is None
    assert environment_problem(OSError(errno.ENOENT, "No such file or directory", "x")) is None
    assert environment_problem(KeyError("latent")) is None


# ---------------------------------------------------------------------------------------------------------------------
# Many inputs, one output each


@pytest.fixture
def same_names(tmp_path, family):
    """inputs/a/face0.png and inputs/b/face0.png: two different images of one file name."""
    save_samples(family, tmp_path / "inputs" / "a", 1, seed=1)
    save_samples(family, tmp_path / "inputs" / "b", 1, seed=2)
    return tmp_path / "inputs"


def test_images_of_one_name_in_different_folders_keep_their_folders(monkeypatch, capsys, same_names, tmp_path):
    assert [name for _, name in named_inputs([same_names])] == ["a/face0", "b/face0"]
    out = tmp_path / "out"
    exit_code, _ = run_zoo(monkeypatch, capsys, "translate", "--from", "tiny", "--to", "tiny-b", same_names, "--out", out,
                           "--steps", "2", "--precision", "float32")  # fmt: skip
    assert exit_code == 0
    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*.png"))
    assert written == ["a/face0-tiny-to-tiny-b.png", "b/face0-tiny-to-tiny-b.png"]
    first, second = (torch.from_numpy(np.asarray(Image.open(out / name))) for name in written)
    assert not torch.equal(first, second)  # two inputs, two different translations

    inverted = tmp_path / "inverted"
    exit_code, _ = run_zoo(monkeypatch, capsys, "invert", "tiny", same_names, "--out", inverted, "--steps", "2")
    assert exit_code == 0
    assert sorted(path.relative_to(inverted).as_posix() for path in inverted.rglob("*.*")) == [
        "a/face0-tiny-reconstruction.png", "a/face0-tiny.latent.safetensors",
        "b/face0-tiny-reconstruction.png", "b/face0-tiny.latent.safetensors",
    ]  # fmt: skip


def test_two_inputs_that_would_write_one_file_are_refused_before_any_work(monkeypatch, capsys, same_names, tmp_path):
    out = tmp_path / "out"
    for command in (["translate", "--from", "tiny", "--to", "tiny-b"], ["invert", "tiny"]):
        exit_code, stderr = run_zoo(monkeypatch, capsys, *command, same_names / "a" / "face0.png",
                                    same_names / "b" / "face0.png", "--out", out)  # fmt: skip
        assert_one_line(exit_code, stderr, "two inputs would write this file", "face0")
        assert not out.exists()
    exit_code, stderr = run_zoo(monkeypatch, capsys, "invert", "tiny", same_names / "a", same_names / "b", "--out", out)
    assert_one_line(exit_code, stderr, "two inputs would write this file")


# ---------------------------------------------------------------------------------------------------------------------
# Sizes and numbers


def test_styles_render_in_chunks_of_the_batch(family):
    source, target = load("tiny").generator, load("tiny-b").generator
    sizes = []
    synthesis = target.synthesis
    target.synthesis = lambda latents, **kwargs: sizes.append(latents.shape[0]) or synthesis(latents, **kwargs)
    z = torch.randn(3, source.config.style_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        latents = source.mapping(z)[:, None].expand(-1, source.n_latent, -1).contiguous()
    whole = translate_multimodal(Renderer(source, target, TranslationOptions(batch=16)), latents, "const", 5)
    sizes.clear()
    chunked = translate_multimodal(Renderer(source, target, TranslationOptions(batch=2)), latents, "const", 5)
    assert chunked.shape == (3, 5, 3, 32, 32) and max(sizes) == 2 and sum(sizes) == 15
    assert torch.allclose(whole, chunked, atol=1e-5)


@pytest.mark.parametrize(
    "options, named",
    [(dict(appearance_layers=8), "--appearance-layers 8"), (dict(swap=10**9), "--swap 1000000000"), (dict(swap=3), "--swap 3"),
     (dict(truncation=math.nan), "--truncation nan"), (dict(batch=0), "--batch 0"), (dict(swap=-1), "--swap -1")],
)  # fmt: skip
def test_translation_options_out_of_range_are_refused_by_name(family, options, named):
    source, target = load("tiny").generator, load("tiny-b").generator
    with pytest.raises(ZooError, match=named):
        Renderer(source, target, TranslationOptions(**options))


def test_absurd_counts_are_refused_before_any_work(family, tmp_path, inputs):
    with pytest.raises(ZooError, match=f"--styles 100000: must be between 0 and {MAX_STYLES}"):
        prepare_translation(TranslationJob(source="tiny", targets=["tiny-b"], out=tmp_path / "out", inputs=[inputs], styles=100_000))
    with pytest.raises(ZooError, match="--n 10000000: 10000000 images of 32px need"):
        sample(family, 10_000_000)
    with pytest.raises(ZooError, match="--truncation nan"):
        sample(family, 2, truncation=math.nan)
    with pytest.raises(ZooError, match="--samples"):
        distance_matrix([load_named("tiny"), load_named("tiny-b")], metric=get_metric("l1"), samples=MAX_SAMPLES + 1)
    for truncation in (-1.0, math.inf, math.nan):
        with pytest.raises(ZooError, match=f"--truncation {truncation}"):
            distance_matrix([load_named("tiny"), load_named("tiny-b")], metric=get_metric("l1"), samples=2, truncation=truncation)
    with pytest.raises(ZooError, match="--batch 0"):
        invert_in_batches(load("tiny"), torch.zeros(1, 3, 32, 32), batch_size=0)
    with pytest.raises(ZooError, match="--styles 0"):
        DemoSettings(styles=0)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("settings, named", [(dict(lr=math.nan), "--inversion-lr nan"), (dict(lr=math.inf), "--inversion-lr inf"),
                                             (dict(steps=0), "--steps 0"), (dict(perceptual_weight=math.nan), "perceptual_weight nan")])
def test_inversion_settings_out_of_range_are_refused_by_name(settings, named):
    with pytest.raises(ZooError, match=named):
        InversionSettings(**settings)


def test_cli_shows_library_range_errors_as_one_line(monkeypatch, capsys, family, inputs, tmp_path):
    out = tmp_path / "out"
    for arguments, named in ((["--appearance-layers", "1000", "--styles", "2"], "--appearance-layers 1000"),
                             (["--styles", "100000"], "--styles 100000"), (["--truncation", "nan"], "--truncation nan"),
                             (["--swap", "99"], "--swap 99"), (["--inversion-lr", "nan"], "--inversion-lr nan")):  # fmt: skip
        exit_code, stderr = run_zoo(monkeypatch, capsys, "translate", "--from", "tiny", "--to", "tiny-b", inputs, "--out", out, *arguments)
        assert_one_line(exit_code, stderr, named)
    exit_code, stderr = run_zoo(monkeypatch, capsys, "sample", "tiny", "--truncation", "nan", "--out", tmp_path / "grid.png")
    assert exit_code == 2 and "--truncation" in stderr and "Traceback" not in stderr  # typer's own range check (min=0)
    assert not out.exists() and not (tmp_path / "grid.png").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Siblings: broken latent files, outputs where a file is in the way, folders given for files


@pytest.fixture
def saved_latent(family, tmp_path, inputs):
    """A real latent file of tiny (2 projection steps, so it holds noise maps) and its tensors and metadata."""
    from safetensors import safe_open

    from zoo.images import load_images
    from zoo.inversion import save_latent

    model = load("tiny")
    result = invert_in_batches(model, load_images([inputs / "face0.png"], 32), InversionSettings(method="projection", steps=2))
    path = save_latent(tmp_path / "face0.latent.safetensors", result, 0, model=model, source="face0.png")
    with safe_open(str(path), framework="pt") as handle:
        return path, {name: handle.get_tensor(name) for name in handle.keys()}, handle.metadata()


@pytest.mark.parametrize(
    "change, reason",
    [(lambda t: t.update(latent=t["latent"].long()), "int64"), (lambda t: t.update(latent=t["latent"] * math.nan), "finite"),
     (lambda t: t.update({"noise.x": t.pop("noise.0")}), "noise maps"), (lambda t: t.update({"noise.0": torch.zeros(1, 3, 3)}), "noise.0"),
     (lambda t: t.update({"noise.1": t["noise.1"].double() * math.inf}), "noise.1")],
)  # fmt: skip
def test_a_broken_latent_file_is_refused_before_any_work(saved_latent, tmp_path, change, reason):
    from safetensors.torch import save_file

    from zoo.inversion import load_latent

    path, tensors, metadata = saved_latent
    assert load_latent(path, load("tiny")).noise is not None  # the unbroken file loads, noise maps included
    change(tensors)
    broken = tmp_path / "broken.latent.safetensors"
    save_file(tensors, str(broken), metadata=metadata)
    with pytest.raises(ZooError, match=reason) as error:
        prepare_translation(TranslationJob(source="tiny", targets=["tiny-b"], out=tmp_path / "out", latent_files=[broken]))
    assert str(error.value).startswith(str(broken)) and "\n" not in str(error.value)


def test_a_latent_without_its_source_name_is_named_after_its_file(saved_latent, tmp_path):
    from safetensors.torch import save_file

    path, tensors, metadata = saved_latent
    anonymous = tmp_path / "anonymous.latent.safetensors"
    save_file(tensors, str(anonymous), metadata={key: value for key, value in metadata.items() if key != "source"})
    prepared = prepare_translation(TranslationJob(source="tiny", targets=["tiny-b"], out=tmp_path / "out", latent_files=[anonymous]))
    assert prepared.stems == ["anonymous.latent"]


def test_folders_and_files_in_the_wrong_place_are_one_line(monkeypatch, capsys, family, inputs, tmp_path):
    a_file = tmp_path / "taken.txt"
    a_file.write_text("keep")
    image = inputs / "face0.png"
    cases = [
        (["invert", "tiny", image, "--out", a_file / "sub"], "is a file"),
        (["sample", "tiny", "--out", a_file / "grid.png"], "is a file"),
        (["sample", "tiny", "--out", inputs], "is a folder"),
        (["translate", "--from", "tiny", "--to", "tiny-b", image, "--reference", inputs, "--out", tmp_path / "out"], "a folder, not an image"),
        (["translate", "--from", "tiny", "--to", "tiny-b", "--latent", inputs, "--out", tmp_path / "out"], "no such latent file"),
        (["eval", "--from", "tiny", "--to", "tiny-b", "--inputs", inputs, "--json", inputs, "--force"], "is a folder"),
    ]
    for arguments, reason in cases:
        exit_code, stderr = run_zoo(monkeypatch, capsys, *arguments)
        assert_one_line(exit_code, stderr, reason)
    assert a_file.read_text() == "keep" and not (tmp_path / "out").exists()


def test_seeds_and_batches_beyond_what_torch_takes_are_refused(monkeypatch, capsys, family, tmp_path):
    for arguments in (["--seed", str(2**80)], ["--batch", str(2**80)]):
        exit_code, stderr = run_zoo(monkeypatch, capsys, "sample", "tiny", "--n", "1", "--out", tmp_path / "grid.png", *arguments)
        assert exit_code == 2 and arguments[0] in stderr and "Traceback" not in stderr
    with pytest.raises(ZooError, match="--batch 1267650600228229401496703205376"):
        sample(family, 1, batch_size=2**100)
    assert not (tmp_path / "grid.png").exists()


def test_distance_outputs_into_a_file_are_refused_before_any_work(monkeypatch, capsys, family, tmp_path):
    a_file = tmp_path / "taken.txt"
    a_file.write_text("keep")
    loaded = []
    monkeypatch.setattr("zoo.cli.measure.load_named", lambda *args: loaded.append(args) or load_named(*args))
    exit_code, stderr = run_zoo(monkeypatch, capsys, "distance-matrix", "--domains", "tiny,tiny-b", "--metric", "l1",
                                "--samples", "2", "--out", a_file / "matrix")  # fmt: skip
    assert_one_line(exit_code, stderr, "is a file", "matrix.csv")
    assert loaded == [] and a_file.read_text() == "keep"


@pytest.mark.parametrize("command, module", [(["translate", "--from", "tiny", "--to", "tiny-b", "--styles", "1"], "zoo.translation"),
                                             (["invert", "tiny"], "zoo.cli.translate")])  # fmt: skip
def test_a_disk_filling_up_part_way_leaves_no_output(monkeypatch, capsys, family, inputs, tmp_path, command, module):
    from zoo.images import save_image

    saved = []

    def fills_up(image, path, force=False, provenance=None):
        if saved:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        saved.append(save_image(image, path, force=force, provenance=provenance))
        return saved[-1]

    monkeypatch.setattr(f"{module}.save_image", fills_up)
    out = tmp_path / "out"
    exit_code, stderr = run_zoo(monkeypatch, capsys, *command, inputs, "--out", out, "--steps", "2")
    assert_one_line(exit_code, stderr, "no space left on device", str(out))
    assert len(saved) == 1 and [path for path in out.rglob("*") if path.is_file()] == []


def test_a_read_only_zoo_home_costs_the_sefa_cache_not_the_inversion(monkeypatch, capsys, family, inputs, tmp_path, zoo_home):
    from zoo.files import atomic_path

    def read_only(path):
        if zoo_home in path.parents:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return atomic_path(path)

    monkeypatch.setattr("zoo.inversion.atomic_path", read_only)
    out = tmp_path / "out"
    exit_code, stderr = run_zoo(monkeypatch, capsys, "invert", "tiny", inputs / "face0.png", "--out", out, "--steps", "2")
    assert exit_code == 0 and "zoo: warning: " in stderr and "SeFa space not cached (" in stderr
    assert (out / "face0-tiny.latent.safetensors").is_file()
