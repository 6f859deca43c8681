import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

import zoo.data
from zoo.data import (
    EpochSampler,
    UnusableImage,
    center_crop_resize,
    images_to_float,
    load_image_rgb,
    prepare_dataset,
    seeded_generator,
)
from zoo.errors import ZooError


def solid(color, size=(20, 20), mode="RGB"):
    return Image.new(mode, size, color)


def save(image, path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def test_load_composites_alpha_on_white(tmp_path):
    rgba = solid((255, 0, 0, 0), mode="RGBA")
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    image = load_image_rgb(save(rgba, tmp_path / "a.png"))
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 0, 0)  # opaque pixel kept
    assert image.getpixel((5, 5)) == (255, 255, 255)  # transparent pixel on white, not black

    la = Image.new("LA", (10, 10), (0, 0))
    assert load_image_rgb(save(la, tmp_path / "la.png")).getpixel((3, 3)) == (255, 255, 255)


def test_load_palette_with_transparency(tmp_path):
    palette = Image.new("P", (10, 10), 1)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putpixel((0, 0), 0)
    path = save(palette, tmp_path / "p.png", transparency=1)
    image = load_image_rgb(path)
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert image.getpixel((5, 5)) == (255, 255, 255)  # palette entry 1 (blue) is transparent


def test_load_cmyk_and_16_bit(tmp_path):
    cmyk = load_image_rgb(save(solid((0, 255, 255, 0), mode="CMYK"), tmp_path / "c.jpg", quality=100))
    red, green, blue = cmyk.getpixel((10, 10))
    assert red > 240 and green < 15 and blue < 15

    levels = np.full((16, 16), 40000, dtype=np.uint16)
    levels[0, 0] = 65535
    path = save(Image.fromarray(levels), tmp_path / "g16.png")
    assert Image.open(path).mode == "I;16"
    grey = load_image_rgb(path)
    assert grey.getpixel((5, 5)) == (156, 156, 156)  # 40000 / 257, scaled rather than clipped to 255
    assert grey.getpixel((0, 0)) == (255, 255, 255)


def test_load_applies_exif_orientation(tmp_path):
    wide = solid((0, 0, 255), size=(30, 10))
    wide.paste((255, 0, 0), (0, 0, 10, 10))  # red at the left end
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image = load_image_rgb(save(wide, tmp_path / "rot.jpg", exif=exif, quality=100))
    assert image.size == (10, 30)
    red, _, blue = image.getpixel((5, 3))  # the left end is now on top
    assert red > 200 and blue < 60


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty file"), (b"not an image at all", "not an image"), ("truncated", "unreadable or truncated")],
)
def test_unusable_files_are_named(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    if content == "truncated":
        buffer = io.BytesIO()
        Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
        content = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    path.write_bytes(content)
    with pytest.raises(UnusableImage, match=reason) as caught:
        load_image_rgb(path)
    assert isinstance(caught.value, ZooError) and str(path) in str(caught.value)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = save(solid((1, 2, 3), size=(64, 64)), tmp_path / "big.png")
    for limit in (1000, 3000):  # 64*64 is over twice the first (Pillow refuses) but under twice the second (it warns)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(ZooError, match="decompression bomb"):
            load_image_rgb(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64)
    assert load_image_rgb(path).size == (64, 64)


def test_center_crop_resize_keeps_the_middle():
    image = solid((0, 0, 0), size=(40, 20))
    image.paste((255, 255, 255), (10, 0, 30, 20))  # the central 20x20 square is white
    out = center_crop_resize(image, 8)
    assert out.size == (8, 8)
    assert np.asarray(out).min() > 250


def make_folder(root):
    rng = np.random.RandomState(0)
    for index in range(5):
        pixels = rng.randint(0, 255, (24 + index, 18 + 2 * index, 3), dtype=np.uint8)
        save(Image.fromarray(pixels), root / f"sub{index % 2}" / f"img{index}.png")
    save(solid((0, 255, 0)), root / "upper.JPG")
    save(solid((0, 0, 255)), root / "w.webp")
    (root / "empty.png").write_bytes(b"")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    save(solid((9, 9, 9), size=(5, 30)), root / "tiny.png")
    (root / "notes.txt").write_text("ignored: not an image extension")


def test_prepare_dataset_skips_and_reports(tmp_path):
    root = tmp_path / "data"
    make_folder(root)
    dataset = prepare_dataset(root, 16, tmp_path / "cache")
    assert dataset.images.shape == (7, 3, 16, 16) and dataset.images.dtype == torch.uint8
    assert dataset.files == ["sub0/img0.png", "sub0/img2.png", "sub0/img4.png", "sub1/img1.png", "sub1/img3.png",
                             "upper.JPG", "w.webp"]  # fmt: skip
    assert sorted(name for name, _ in dataset.skipped) == ["corrupt.jpg", "empty.png", "tiny.png"]
    reasons = dict(dataset.skipped)
    assert reasons["empty.png"] == "empty file (0 bytes)"
    assert reasons["tiny.png"].startswith("too small (5x30 px")
    report = dataset.skip_report()
    assert report.startswith("skipped 3 of 10 files: ") and "tiny.png (too small" in report
    assert dataset.images[5, 1].min() > 250 and dataset.images[5, 0].max() < 5  # the green JPEG


def test_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    root = tmp_path / "data"
    make_folder(root)
    first = prepare_dataset(root, 16, tmp_path / "cache")

    def no_decoding(path, size):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(zoo.data, "_decode", no_decoding)
    cached = prepare_dataset(root, 16, tmp_path / "cache")
    assert torch.equal(cached.images, first.images)
    assert (cached.files, cached.skipped, cached.cache_path) == (first.files, first.skipped, first.cache_path)

    os.utime(root / "w.webp", ns=(0, 0))  # touched: the fingerprint changes, so the folder is decoded again
    with pytest.raises(AssertionError, match="decoded although"):
        prepare_dataset(root, 16, tmp_path / "cache")
    with pytest.raises(AssertionError, match="decoded although"):
        prepare_dataset(root, 8, tmp_path / "cache")  # another resolution


def test_no_usable_image_is_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZooError, match=r"no usable image \(png/jpg/jpeg/webp\) found; the folder") as caught:
        prepare_dataset(tmp_path / "empty", 16, tmp_path / "cache")
    assert "\n" not in str(caught.value)

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"")
    with pytest.raises(ZooError, match=r"all 1 candidate files were skipped \(e.g. x.png: empty file"):
        prepare_dataset(tmp_path / "bad", 16, tmp_path / "cache")
    with pytest.raises(ZooError, match="no such folder"):
        prepare_dataset(tmp_path / "missing", 16, tmp_path / "cache")


def test_images_to_float_range():
    values = images_to_float(torch.tensor([0, 255, 128], dtype=torch.uint8))
    assert values.tolist() == pytest.approx([-1.0, 1.0, 128 / 127.5 - 1], abs=1e-6)


def test_sampler_epochs_resume_and_ranks():
    sampler = EpochSampler(10, 4, seed=3)
    steps = [sampler.global_indices(step) for step in range(5)]
    stream = torch.cat(steps)
    assert sorted(stream[:10].tolist()) == list(range(10))  # epoch 0: every image once
    assert sorted(stream[10:20].tolist()) == list(range(10))  # epoch 1
    assert not torch.equal(stream[:10], stream[10:20])
    fresh = EpochSampler(10, 4, seed=3)  # a resumed run asks for step 3 first
    assert torch.equal(fresh.global_indices(3), steps[3])
    ranks = [EpochSampler(10, 4, seed=3, rank=rank, world_size=2).indices(2) for rank in range(2)]
    assert torch.equal(ranks[0], steps[2][0::2]) and torch.equal(ranks[1], steps[2][1::2])
    assert not torch.equal(EpochSampler(10, 4, seed=4).global_indices(0), steps[0])


def test_seeded_generator_is_a_function_of_its_keys():
    first = torch.rand(3, generator=seeded_generator(1, "step", 2))
    assert torch.equal(first, torch.rand(3, generator=seeded_generator(1, "step", 2)))
    assert not torch.equal(first, torch.rand(3, generator=seeded_generator(1, "step", 3)))
