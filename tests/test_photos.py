"""Real photos in: face detection (MTCNN), FFHQ alignment, centre crops, several or no faces, paste-back.

The photos are scikit-image's (a test dependency): astronaut.png (Eileen Collins, a portrait) and chelsea.png (a cat).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from zoo import hookimpl
from zoo.align import Transform, align_center, align_ffhq, ffhq_quad, paste_back
from zoo.data import load_image_rgb
from zoo.detect import DetectorSpec, Face, available_detectors, load_detector
from zoo.errors import ZooError
from zoo.photos import AlignSettings, align_photos, check_paste_back, load_inputs, load_one_each

PHOTOS = Path(skimage.data.__file__).parent
ASTRONAUT, CHELSEA = PHOTOS / "astronaut.png", PHOTOS / "chelsea.png"
EMOJI = Path(__file__).parents[1] / "plugins" / "zoo_plugins" / "emoji" / "data" / "noto" / "1F600.png"  # grinning face

# Read off by hand from astronaut.png (512 x 512) enlarged 10x with a 5 px grid, not from any detector: the centre of
# each iris (image left, image right) and the two corners of the closed lips.
HAND_EYES = np.array([[203.5, 101.0], [247.0, 102.5]])
HAND_MOUTH_CORNERS = np.array([[203.0, 139.7], [243.5, 141.2]])
# FFHQ's canonical positions as fractions of the crop's side: the mean five landmarks of the FFHQ images (the 512 px
# template of facexlib / GFPGAN: eyes (192.98, 239.95), (318.90, 240.19); mouth corners (201.26, 371.41),
# (313.09, 371.15)), eyes and mouth centre.
FFHQ_EYES = np.array([[192.98138, 239.94708], [318.90277, 240.1936]]) / 512
FFHQ_MOUTH = np.array([(201.26117 + 313.08905) / 2, (371.41043 + 371.15118) / 2]) / 512


def photo(path) -> np.ndarray:
    return np.array(load_image_rgb(path))


@pytest.fixture
def two_astronauts(tmp_path):
    """astronaut.png twice side by side (1024 x 512): a photo with two faces."""
    image = photo(ASTRONAUT)
    path = tmp_path / "crew.png"
    Image.fromarray(np.concatenate([image, image[:, ::-1]], axis=1)).save(path)
    return path


def test_the_detector_finds_the_astronaut_and_no_face_in_the_cat_or_an_emoji():
    detector = load_detector()
    faces = detector(photo(ASTRONAUT))
    assert len(faces) == 1 and faces[0].score > 0.99
    x0, y0, x1, y1 = faces[0].box
    assert x0 < HAND_EYES[:, 0].min() and HAND_EYES[:, 0].max() < x1 and y0 < HAND_EYES[:, 1].min() and HAND_MOUTH_CORNERS[:, 1].max() < y1
    # each of the detector's eyes and mouth corners within 4 px of the hand-placed ones (the eyes are 44 px apart)
    found = faces[0].landmarks[[0, 1, 3, 4]]
    assert np.abs(found - np.concatenate([HAND_EYES, HAND_MOUTH_CORNERS])).max() < 4
    assert detector(photo(CHELSEA)) == []
    emoji = load_image_rgb(EMOJI)
    assert detector(np.array(emoji)) == [] and detector(np.array(emoji.resize((256, 256), Image.Resampling.BICUBIC))) == []


def test_the_aligned_astronaut_has_hand_annotated_eyes_and_mouth_where_ffhq_puts_them():
    image = load_image_rgb(ASTRONAUT)
    face = load_detector()(np.array(image))[0]
    crop, transform = align_ffhq(image, face, 256)
    assert crop.size == (256, 256)
    eyes = transform.apply(HAND_EYES) / 256
    mouth = transform.apply(HAND_MOUTH_CORNERS.mean(axis=0, keepdims=True))[0] / 256
    assert np.abs(eyes - FFHQ_EYES).max() < 0.03, eyes
    assert np.abs(mouth - FFHQ_MOUTH).max() < 0.03, mouth
    # the transform is the one the pixels went through: the photo warped by it gives the same crop
    inverse = transform.inverse()
    linear, offset = inverse[:, :2], inverse[:, 2] + 0.5 - inverse[:, :2] @ [0.5, 0.5]  # PIL's pixel-centre convention
    warped = image.transform((256, 256), Image.Transform.AFFINE, (*linear[0], offset[0], *linear[1], offset[1]), Image.Resampling.BILINEAR)
    assert np.abs(np.float32(warped)[8:-8, 8:-8] - np.float32(crop)[8:-8, 8:-8]).mean() < 4


def test_ffhq_quad_is_nvidias_square_for_a_level_face():
    # eyes 10 px apart and the mouth 10 px below their midpoint: sides 4x the eye distance, centred 1 px below the eyes
    quad = ffhq_quad(np.array([[45.0, 50.0], [55.0, 50.0], [50.0, 55.0], [46.0, 60.0], [54.0, 60.0]]))
    np.testing.assert_allclose(quad, [[30, 31], [30, 71], [70, 71], [70, 31]])


def test_a_photo_with_two_faces_gives_two_numbered_crops_and_largest_gives_one(two_astronauts, tmp_path):
    crops = align_photos([two_astronauts], "face", 64, tmp_path / "out", AlignSettings("on"))
    assert [crop.name for crop in crops] == ["crew-face1", "crew-face2"]
    assert crops[0].transform.face.box[0] < 512 <= crops[1].transform.face.box[0]  # numbered left to right
    for name in ("crew-face1", "crew-face2"):
        assert Image.open(tmp_path / "out" / f"{name}.png").size == (64, 64)
        saved = Transform.from_dict(json.loads((tmp_path / "out" / f"{name}.json").read_text()))
        assert saved.kind == "ffhq" and saved.photo_size == (1024, 512)
    largest = align_photos([two_astronauts], "face", 64, tmp_path / "one", AlignSettings("on", largest=True))
    assert [crop.name for crop in largest] == ["crew"]
    with pytest.raises(ZooError, match="already exists"):
        align_photos([two_astronauts], "face", 64, tmp_path / "out", AlignSettings("on"))


def test_no_face_is_one_line_naming_the_file():
    with pytest.raises(ZooError, match=r"chelsea\.png: no face found"):
        load_inputs([CHELSEA], "face", 256, AlignSettings("auto"))


def test_alignment_follows_the_domain_declaration():
    cat = load_inputs([CHELSEA], "cat", 64, AlignSettings("auto"))  # the animal family: centre crop, no detector
    assert cat.crops[0].transform.kind == "center-crop" and cat.images.shape == (1, 3, 64, 64)
    assert load_inputs([ASTRONAUT], "face", 64, AlignSettings("auto")).crops[0].transform.kind == "ffhq"
    assert load_inputs([ASTRONAUT], "face", 64, AlignSettings("off")).crops is None
    assert load_inputs([ASTRONAUT], "tiny", 64, AlignSettings("auto")).crops is None  # undeclared: as before
    assert load_inputs([ASTRONAUT], "tiny", 64, AlignSettings("on")).crops[0].transform.kind == "ffhq"


def test_eval_takes_one_face_per_file_and_paste_back_needs_aligned_inputs_and_one_target(two_astronauts):
    images = load_one_each([two_astronauts, ASTRONAUT], "tiny", 32, AlignSettings("on"))
    assert images.shape == (2, 3, 32, 32)  # two faces in crew.png, one image: outputs stay paired with their files
    with pytest.raises(ZooError, match="--paste-back needs aligned inputs"):
        check_paste_back(None, ["tiny-b"])
    crops = load_inputs([ASTRONAUT], "tiny", 32, AlignSettings("on")).crops
    with pytest.raises(ZooError, match="single --to"):
        check_paste_back(crops, ["tiny-b", "tiny-c"])


def test_paste_back_changes_only_the_face_region_and_keeps_the_size():
    image = load_image_rgb(ASTRONAUT)
    original = np.array(image)
    crop, transform = align_ffhq(image, load_detector()(original)[0], 64)
    replacement = np.full((64, 64, 3), (0, 255, 0), np.uint8)
    pasted = paste_back(original, replacement, transform)
    assert pasted.shape == original.shape
    ys, xs = np.mgrid[: original.shape[0], : original.shape[1]]
    inside = transform.apply(np.stack([xs.ravel(), ys.ravel()], 1).astype(float)).reshape(*original.shape[:2], 2)
    outside = ((inside < -0.5) | (inside > 63.5)).any(axis=2)
    assert outside.sum() > 0.5 * outside.size
    assert np.array_equal(pasted[outside], original[outside])  # bit-identical outside the crop
    centre = ((inside > 16) & (inside < 48)).all(axis=2)
    assert (pasted[centre] == (0, 255, 0)).all()  # the crop's centre replaced; between them the feathered edge
    # a 256 px crop (finer than the photo's face) pasted back is the photo again up to resampling
    crop, transform = align_ffhq(image, transform.face, 256)
    again = paste_back(original, np.array(crop), transform)
    assert np.abs(again.astype(int) - original)[centre].mean() < 3


def test_centre_crop_transform_round_trips():
    image = load_image_rgb(CHELSEA)  # 451 x 300
    crop, transform = align_center(image, 100)
    np.testing.assert_allclose(transform.apply(np.array([[224.5, 149.5], [74.5, -0.5]])), [[49.5, 49.5], [-0.5, -0.5]], atol=1e-9)
    pasted = paste_back(np.array(image), np.array(crop), transform, feather=0.0)
    assert np.array_equal(pasted[:, :75], np.array(image)[:, :75]) and np.array_equal(pasted[:, 376:], np.array(image)[:, 376:])


def test_a_plugin_can_add_a_detector():
    class FixedDetector:
        @hookimpl
        def register_detectors(self, register):
            register(DetectorSpec("fixed", "one face where the astronaut's is", lambda: lambda image: [
                Face((180, 60, 268, 172), 1.0, np.array([*HAND_EYES, [225, 129], *HAND_MOUTH_CORNERS]))]))

    from zoo.plugins import pm

    plugin = FixedDetector()
    pm.register(plugin, name="fixed-detector")
    try:
        assert "fixed" in available_detectors() and "mtcnn" in available_detectors()
        crop = load_inputs([CHELSEA], "face", 32, AlignSettings("on", detector="fixed")).crops[0]
        assert crop.transform.face.score == 1.0
        with pytest.raises(ZooError, match="--detector 'nope'"):
            load_inputs([ASTRONAUT], "face", 32, AlignSettings("on", detector="nope"))
    finally:
        pm.unregister(plugin)
        load_detector.cache_clear()


def zoo(*args):
    return subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_translate_and_invert_align_photos_and_paste_back(zoo_home, tmp_path, two_astronauts, family):
    out = tmp_path / "out"
    result = zoo("translate", "--from", "tiny", "--to", "tiny-b", two_astronauts, "--align", "on", "--paste-back",
                 "--steps", "2", "--perceptual", "none", "--out", out)  # fmt: skip
    assert result.returncode == 0, result.stderr
    original = photo(two_astronauts)
    for number in (1, 2):
        assert Image.open(out / f"crew-face{number}-tiny-to-tiny-b.png").size == (32, 32)
        pasted = photo(out / f"crew-face{number}-tiny-to-tiny-b-pasted.png")
        assert pasted.shape == original.shape
        changed = (pasted != original).any(axis=2)
        own_half, other_half = (slice(0, 512), slice(512, None))[:: 1 if number == 1 else -1]
        assert changed[:, own_half].sum() > 1000 and not changed[:, other_half].any()
    result = zoo("invert", "tiny", ASTRONAUT, CHELSEA, "--align", "on", "--steps", "1", "--perceptual", "none", "--out", out)
    assert result.returncode == 2 and result.stderr.strip() == f"zoo: error: {CHELSEA}: no face found; give a photo with a face " \
        "at least 20 px wide, or use --align off"  # fmt: skip
    result = zoo("invert", "tiny", two_astronauts, "--align", "on", "--largest", "--steps", "1", "--perceptual", "none", "--out", out)
    assert result.returncode == 0, result.stderr
    assert (out / "crew-tiny.latent.safetensors").is_file() and not (out / "crew-face1-tiny.latent.safetensors").exists()


def test_align_command(tmp_path):
    result = zoo("align", ASTRONAUT, "--domain", "face", "--size", "64", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "astronaut.png").size == (64, 64) and (tmp_path / "astronaut.json").is_file()
