"""Translation between domains of a family: the API pieces and `zoo translate` / `zoo invert` as users run them."""

import struct
import zlib

import numpy as np
import pytest
import references
import torch
from PIL import Image
from test_cli import assert_user_error, zoo

from zoo import load
from zoo.errors import ZooError
from zoo.images import load_images, to_uint8
from zoo.inversion import InversionResult, InversionSettings, invert_in_batches, save_latent
from zoo.translation import (
    Renderer,
    TranslationJob,
    TranslationOptions,
    family_members,
    prepare_translation,
    random_appearance,
    run_translation,
    translate,
    translate_images,
    translate_multimodal,
    translate_with_reference,
    with_appearance,
)

SIZE = 32


def test_family_is_the_shared_mapping_network(family):
    assert family_members("tiny") == ["tiny-b", "tiny-c"]
    assert family_members("stranger") == []
    with pytest.raises(ZooError, match="not installed"):
        family_members("nobody")


def test_appearance_codes_take_the_last_k_rows(family):
    content = torch.randn(2, family.n_latent, 48)
    appearance = torch.randn(2, 48)
    mixed = with_appearance(content, appearance, 2)
    assert torch.equal(mixed[:, :-2], content[:, :-2])
    assert torch.equal(mixed[:, -1], appearance) and torch.equal(mixed[:, -2], appearance)
    assert torch.equal(with_appearance(content, appearance, 0), content)
    with pytest.raises(ZooError, match="latent rows"):
        with_appearance(content, appearance, family.n_latent)


def test_random_appearance_is_truncated_toward_the_target_mean(family):
    options = TranslationOptions(truncation=0.5, seed=3)
    codes = random_appearance(family, 4, options)
    z = torch.randn(4, 48, generator=torch.Generator().manual_seed(3))
    center = family.truncation_center()
    assert torch.allclose(codes, center + 0.5 * (family.mapping(z) - center), atol=1e-6)


def test_weight_swap_renderer_uses_the_source_layers(family):
    target = load("tiny-b").generator
    latents = family.mapping(torch.randn(2, 48)).unsqueeze(1).repeat(1, family.n_latent, 1)
    plain = Renderer(family, target, TranslationOptions(swap=0)).render(latents, "const")
    swapped = Renderer(family, target, TranslationOptions(swap=1)).render(latents, "const")
    features = Renderer(family, target, TranslationOptions(swap=1, swap_mode="features")).render(latents, "const")
    assert (plain - swapped).abs().max() > 1e-3 and (swapped - features).abs().max() > 1e-4
    with pytest.raises(ZooError, match="every layer"):
        Renderer(family, target, TranslationOptions(swap=3))


def test_cross_family_and_unknown_domains_are_refused_before_any_work(family, inputs, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ZooError, match="share no W space"):
        prepare_translation(TranslationJob(source="tiny", targets=["stranger"], out=out, inputs=sorted(inputs.iterdir())))
    result = zoo("translate", "--from", "tiny", "--to", "stranger", inputs, "--out", out, check=False)
    assert_user_error(result, "share no W space")
    with pytest.raises(ZooError, match="nobody: neither an installed model"):
        prepare_translation(TranslationJob(source="tiny", targets=["nobody"], out=out, inputs=sorted(inputs.iterdir())))
    assert not out.exists()


def test_translate_writes_predictable_files_and_never_overwrites(family, inputs, tmp_path):
    out = tmp_path / "out"
    reference = inputs / "face1.png"
    args = ["translate", "--from", "tiny", "--to", "tiny-b", inputs, "--out", out, "--styles", "2", "--reference", reference,
            "--grid", "--steps", "20", "--swap", "1"]  # fmt: skip
    result = zoo(*args)
    assert "loss l1 + ssim" in result.stderr
    expected = {f"face{i}-tiny-to-tiny-b{suffix}.png" for i in range(2) for suffix in ("", "-style1", "-style2", "-ref-face1")}
    assert {path.name for path in out.iterdir()} == expected | {"tiny-to-tiny-b-grid.png"}
    with Image.open(out / "tiny-to-tiny-b-grid.png") as grid_image:
        assert grid_image.size == (5 * (SIZE + 2) + 2, 2 * (SIZE + 2) + 2)  # input, translation, 2 styles, reference
    before = {path: path.stat().st_mtime_ns for path in out.iterdir()}
    assert_user_error(zoo(*args, check=False), "already exists", "--force")
    assert {path: path.stat().st_mtime_ns for path in out.iterdir()} == before
    zoo(*args, "--force")
    styles = [np.asarray(Image.open(out / f"face0-tiny-to-tiny-b-style{i}.png")) for i in (1, 2)]
    assert np.abs(styles[0].astype(int) - styles[1]).max() > 0


def test_translate_to_all_and_from_saved_latents(family, inputs, tmp_path):
    out = tmp_path / "out"
    zoo("translate", "--from", "tiny", "--to", "all", inputs, "--out", out, "--steps", "10", "--styles", "1", "--grid")
    with Image.open(out / "face0-tiny-to-all.png") as grid_image:
        assert grid_image.size == (3 * (SIZE + 2) + 2, 2 * (SIZE + 2) + 2)  # rows tiny-b, tiny-c: input, translation, style
    with Image.open(out / "tiny-to-all-grid.png") as grid_image:
        assert grid_image.size == (3 * (SIZE + 2) + 2, 2 * (SIZE + 2) + 2)  # rows face0, face1: input, tiny-b, tiny-c

    inverted = zoo("invert", "tiny", inputs / "face0.png", "--out", out, "--steps", "10", "--precision", "float32")
    assert "face0.png" in inverted.stdout and "mean SSIM" in inverted.stdout
    assert "float32 synthesis on cpu" in inverted.stderr
    latent = out / "face0-tiny.latent.safetensors"
    zoo("translate", "--from", "tiny", "--to", "tiny-c", "--latent", latent, "--out", out / "from-latent", "--swap", "0")
    job = TranslationJob(source="tiny", targets=["tiny-c"], out=out / "from-image", inputs=[inputs / "face0.png"], swap=0,
                         inversion=InversionSettings(steps=10, precision="float32"))  # fmt: skip
    run_translation(prepare_translation(job))
    from_latent = np.asarray(Image.open(out / "from-latent" / "face0-tiny-to-tiny-c.png"))
    from_image = np.asarray(Image.open(out / "from-image" / "face0-tiny-to-tiny-c.png"))
    assert np.array_equal(from_latent, from_image)  # the bounded inversion is deterministic
    with pytest.raises(ZooError, match="inverted with another model"):
        prepare_translation(TranslationJob(source="tiny-b", targets=["tiny-c"], out=out, latent_files=[latent]))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (with almost no data): a decompression bomb."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_bad_inputs_get_one_line_errors_and_odd_images_are_converted(family, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "text.png").write_text("not an image")
    (bad / "empty.png").write_bytes(b"")
    Image.new("RGB", (1, 1)).save(bad / "dot.png")
    Image.new("RGB", (40, 40), "red").save(bad / "whole.png")
    (bad / "truncated.png").write_bytes((bad / "whole.png").read_bytes()[:60])
    (bad / "bomb.png").write_bytes(png_claiming(100_000, 100_000))
    reasons = {"text.png": "not an image", "empty.png": "empty file", "dot.png": "too small", "truncated.png": "truncated",
               "bomb.png": "decompression bomb"}  # fmt: skip
    for name, reason in reasons.items():
        job = TranslationJob(source="tiny", targets=["tiny-b"], out=tmp_path / "out", inputs=[bad / name])
        with pytest.raises(ZooError, match=reason) as error:
            prepare_translation(job)
        assert str(error.value).startswith(str(bad / name)) and "\n" not in str(error.value)
    result = zoo("translate", "--from", "tiny", "--to", "tiny-b", bad / "bomb.png", "--out", tmp_path / "out", check=False)
    assert_user_error(result, "bomb.png", "decompression bomb")

    odd = tmp_path / "odd"
    odd.mkdir()
    rng = np.random.RandomState(0)
    Image.fromarray(rng.randint(0, 255, (30, 50), dtype=np.uint8), "L").save(odd / "grey.png")
    Image.fromarray(rng.randint(0, 255, (40, 40, 4), dtype=np.uint8), "RGBA").save(odd / "alpha.png")
    Image.new("CMYK", (36, 36), (0, 128, 128, 0)).save(odd / "cmyk.jpg")
    Image.fromarray(rng.randint(0, 65535, (40, 40), dtype=np.uint16)).save(odd / "deep.png")
    Image.new("P", (48, 20), 3).save(odd / "palette.png")
    zoo("translate", "--from", "tiny", "--to", "tiny-b", odd, "--out", tmp_path / "out", "--steps", "2")
    written = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert written == sorted(f"{stem}-tiny-to-tiny-b.png" for stem in ("grey", "alpha", "cmyk", "deep", "palette"))


# ---------------------------------------------------------------------------------------------------------------------
# Outputs against independent renderings (tests/references.py): what the target, its layer-swapped forms and the
# appearance codes must produce, written out without the code under test.

SWAPPED = {1: [4, 8], 2: [4, 8, 16]}  # the paper's l -> the resolutions it takes from the source


def w_plus(generator, count, seed):
    """W+ latents with a different w on every row, so a row taken from the wrong place shows."""
    z = torch.randn(count * generator.n_latent, generator.config.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return generator.mapping(z).view(count, generator.n_latent, -1)


def expected_rendering(source, target, latents, swap: int, mode: str):
    if swap == 0:
        return references.render(target, latents)
    if mode == "features":
        return references.feature_swapped(source, target, latents, 2 ** (swap + 2))
    keys = references.keys_by_resolution(target, SWAPPED[swap])
    return references.render(references.weight_swapped(source, target, keys), latents)


def assert_renders_apart(images, other):
    assert (images - other).abs().max() > 1e-2


@pytest.mark.parametrize(("swap", "mode"), [(0, "weights"), (1, "weights"), (2, "weights"), (1, "features"), (2, "features")])
def test_translation_is_the_target_or_its_layer_swapped_form(family, swap, mode):
    source, target = load("tiny-c").generator, load("tiny-b").generator
    latents = w_plus(family, 2, seed=4)
    images = translate(Renderer(source, target, TranslationOptions(swap=swap, swap_mode=mode)), latents, "const")
    torch.testing.assert_close(images, expected_rendering(source, target, latents, swap, mode), atol=1e-5, rtol=0)
    assert_renders_apart(images, references.render(source, latents))
    if swap:
        assert_renders_apart(images, references.render(target, latents))


@pytest.mark.parametrize(("swap", "mode"), [(0, "weights"), (1, "features")])
def test_multimodal_outputs_take_the_last_k_rows_from_truncated_random_codes(family, swap, mode):
    source, target = family, load("tiny-b").generator
    options = TranslationOptions(swap=swap, swap_mode=mode, appearance_layers=3, truncation=0.6, seed=5)
    latents = w_plus(family, 2, seed=6)
    outputs = translate_multimodal(Renderer(source, target, options), latents, "const", styles=3)
    assert outputs.shape == (2, 3, 3, SIZE, SIZE)
    z = torch.randn(3, 48, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        mean = target.latent_avg.view(1, -1)
        codes = mean + 0.6 * (target.style(z) - mean)
    n = target.n_latent
    for image_index in range(2):
        for style in range(3):
            mixed = latents[image_index : image_index + 1].clone()
            mixed[:, n - 3 :] = codes[style]
            expected = expected_rendering(source, target, mixed, swap, mode)
            torch.testing.assert_close(outputs[image_index, style : style + 1], expected, atol=1e-5, rtol=0)
    assert_renders_apart(outputs[0, 0], outputs[0, 1])


def test_reference_guided_output_takes_the_last_k_rows_from_the_reference_latent(family):
    source, target = family, load("tiny-b").generator
    renderer = Renderer(source, target, TranslationOptions(swap=1, appearance_layers=2))
    latents, reference_latent = w_plus(family, 2, seed=7), w_plus(family, 1, seed=8)
    outputs = translate_with_reference(renderer, latents, "const", reference_latent)
    n = target.n_latent
    mixed = torch.cat([latents[:, : n - 2], reference_latent[:, n - 2 :].expand(2, -1, -1)], dim=1)
    torch.testing.assert_close(outputs, expected_rendering(source, target, mixed, 1, "weights"), atol=1e-5, rtol=0)


def test_translate_images_renders_the_inverted_latents_with_the_target(family, inputs):
    """The path `zoo eval` takes: inversion in the source, rendering by the target."""
    source, target = load("tiny"), load("tiny-b")
    images = load_images(sorted(inputs.iterdir()), SIZE)
    inverted = invert_in_batches(source, images, InversionSettings(steps=3, precision="float32"))
    translated = translate_images(Renderer(source.generator, target.generator, TranslationOptions()), inverted)
    expected = references.render(target.generator, inverted.latents).clamp(-1, 1)
    torch.testing.assert_close(translated.outputs, expected, atol=1e-5, rtol=0)
    assert_renders_apart(translated.outputs, references.render(source.generator, inverted.latents).clamp(-1, 1))


def test_zoo_translate_writes_the_target_rendering_of_a_saved_latent(family, tmp_path):
    source = load("tiny")
    latent = w_plus(family, 1, seed=9)
    result = InversionResult(latents=latent, noise=None, reconstructions=torch.zeros(1, 3, SIZE, SIZE),
                             losses=torch.zeros(1), settings=InversionSettings(), loss_label="none")  # fmt: skip
    path = save_latent(tmp_path / "face.latent.safetensors", result, 0, model=source, source="face.png")
    out = tmp_path / "out"
    zoo("translate", "--from", "tiny", "--to", "tiny-b", "--latent", path, "--out", out, "--swap", "1", "--styles", "1",
        "--appearance-layers", "2", "--truncation", "0.5", "--seed", "3")  # fmt: skip
    target = load("tiny-b").generator
    keys = references.keys_by_resolution(target, SWAPPED[1])
    swapped = references.weight_swapped(family, target, keys)
    z = torch.randn(1, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        code = target.latent_avg + 0.5 * (target.style(z) - target.latent_avg)
    styled = latent.clone()
    styled[:, -2:] = code
    for suffix, expected in (("", references.render(swapped, latent)), ("-style1", references.render(swapped, styled))):
        written = np.asarray(Image.open(out / f"face-tiny-to-tiny-b{suffix}.png")).astype(int)
        assert np.abs(written - to_uint8(expected[0]).permute(1, 2, 0).numpy()).max() <= 1, suffix
