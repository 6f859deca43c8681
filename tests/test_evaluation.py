"""`zoo eval`: the paper's LPIPS_s / LPIPS_d / reconstruction SSIM / FID, paired ground truth, the emoji test split."""

import csv
import json
import pickle

import numpy as np
import pytest
import torch
from conftest import save_samples
from test_cli import assert_user_error, zoo
from test_metrics import random_images, random_lpips
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from zoo_plugins.emoji import DATA as EMOJI_DATA

from zoo.errors import ZooError
from zoo.evaluation import (
    FID_WEIGHTS_FILE,
    FID_WEIGHTS_URL,
    EvaluationJob,
    cached_features,
    choose_inputs,
    evaluate,
    frechet_distance,
    held_out_inputs,
    indexed_distances,
    nearest,
    plan_fid,
    prepare_evaluation,
    random_pairs,
    run_evaluations,
    score,
)
from zoo.inversion import InversionResult, InversionSettings, invert_in_batches
from zoo.metrics import get_metric
from zoo.translation import TranslatedImages, translate_images

FAST = dict(metric="l1", inversion=InversionSettings(steps=3), fid=False)


class RandomInception(FeatureExtractorInceptionV3):
    """torch-fidelity's FID network with He-initialised random weights (its constructor insists on a weights file)."""

    def load_state_dict(self, state_dict, strict=True, assign=False):
        for module in self.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight)


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory):
    """A file of random FID Inception weights: plumbing only, never numbers to report."""
    folder = tmp_path_factory.mktemp("inception")
    torch.save({}, folder / "empty.pt")
    torch.manual_seed(0)
    network = RandomInception("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(folder / "empty.pt"))
    torch.save(network.state_dict(), folder / FID_WEIGHTS_FILE)
    return folder / FID_WEIGHTS_FILE


@pytest.fixture
def no_fid_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("ZOO_FID_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints" / FID_WEIGHTS_FILE


def test_retrieval_and_indexed_distances_from_cached_features():
    candidates = random_images(0, n=6)
    order = torch.tensor([4, 0, 5, 2])
    queries = candidates[order] + 0.01 * random_images(1, n=4)  # each query is a slightly changed candidate
    for metric in (get_metric("l1"), get_metric("ssim"), random_lpips("alex")):
        query_features, candidate_features = metric.features(queries), metric.features(candidates)
        assert torch.equal(nearest(metric, query_features, 4, candidate_features, 6), order)
        pairs_a, pairs_b = torch.tensor([0, 3, 3, 1]), torch.tensor([5, 2, 0, 1])
        expected = metric(queries[pairs_a], candidates[pairs_b])
        torch.testing.assert_close(indexed_distances(metric, query_features, pairs_a, candidate_features, pairs_b), expected)
    lpips = random_lpips("alex")  # features in chunks join into the features of the whole set
    torch.testing.assert_close(lpips.distance_between(cached_features(lpips, candidates.split(4), "cpu"), lpips.features(candidates)),
                               torch.zeros(6))  # fmt: skip


def test_random_pairs_are_distinct_and_every_pair_when_few():
    first, second = random_pairs(4, 1000, seed=0)
    assert sorted(zip(first.tolist(), second.tolist())) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    first, second = random_pairs(100, 50, seed=0)
    assert len(set(zip(first.tolist(), second.tolist()))) == 50 and (first < second).all()
    assert not torch.equal(first, random_pairs(100, 50, seed=1)[0])


def test_a_translation_that_changes_nothing_scores_zero_and_finds_every_counterpart(family, tmp_path):
    """Inputs as outputs and as the target set: LPIPS_s 0, paired distances 0, retrieval 1, reconstruction SSIM 1."""
    folder = save_samples(family, tmp_path / "faces", 4)
    prepared = prepare_evaluation(EvaluationJob("tiny", "tiny-b", folder, pairs=folder, **FAST))
    images = prepared.images
    unchanged = InversionResult(latents=torch.zeros(4, 1, 1), noise=None, reconstructions=images, losses=torch.zeros(4),
                                settings=InversionSettings(), loss_label="none")  # fmt: skip
    result = score(prepared, TranslatedImages(outputs=images.clone(), styles=None, inversion=unchanged))
    assert result.similarity == 0 and result.paired.distance == 0 and result.paired.baseline_distance == 0
    assert result.paired.top1 == 1 and result.paired.baseline_top1 == 1 and result.paired.candidates == 4
    assert result.reconstruction_ssim == pytest.approx(1, abs=1e-4)
    expected_diversity = torch.stack([(images[i] - images[j]).abs().mean() for i in range(4) for j in range(i + 1, 4)]).mean()
    assert result.diversity == pytest.approx(float(expected_diversity)) and result.diversity_pairs == 6
    assert [row["nearest"] for row in result.per_input] == [f"face{i}.png" for i in range(4)]


def test_evaluation_numbers_are_the_translations_distances(family, tmp_path, inception_weights, monkeypatch):
    monkeypatch.setenv("ZOO_FID_WEIGHTS", str(inception_weights))
    folder = save_samples(family, tmp_path / "faces", 4)
    options = dict(FAST, fid=True, reference_data=folder, pairs=folder, styles=3, swap=1)
    result = evaluate("tiny", "tiny-b", folder, **options)

    prepared = prepare_evaluation(EvaluationJob("tiny", "tiny-b", folder, **options))
    inverted = invert_in_batches(prepared.source, prepared.images, options["inversion"])
    again = translate_images(prepared.renderer, inverted, styles=3)
    outputs, images = again.outputs, prepared.images  # the bounded inversion is deterministic
    assert result.similarity == pytest.approx(float((outputs - images).abs().mean()), rel=1e-5)
    assert result.similarity > 0.01
    assert result.paired.distance == pytest.approx(result.similarity, rel=1e-5)  # the counterparts are the inputs
    assert result.paired.baseline_distance == 0 and result.paired.baseline_top1 == 1
    pair_distances = [(outputs[i] - outputs[j]).abs().mean() for i in range(4) for j in range(i + 1, 4)]
    assert result.diversity == pytest.approx(float(torch.stack(pair_distances).mean()), rel=1e-5)
    style_pairs = [(again.styles[:, a] - again.styles[:, b]).abs().mean() for a in range(3) for b in range(a + 1, 3)]
    assert result.style_diversity == pytest.approx(float(torch.stack(style_pairs).mean()), rel=1e-5)
    assert 0 < result.reconstruction_ssim < 1
    assert result.fid.value > 0 and (result.fid.reference_images, result.fid.outputs) == (4, 4)
    assert result.notes == ["FID from 4 outputs (fewer than its 2048 feature dimensions) is biased upward; "
                            "compare only FIDs from equally many inputs (the paper used 2000)"]  # fmt: skip
    assert result.translation["swap"] == 1 and result.translation["styles"] == 3 and result.inversion["steps"] == 3
    saved = json.loads(json.dumps(result.to_dict()))
    assert saved["labels"]["distances"].startswith("L1") and len(saved["per_input"]) == 4


def test_several_targets_and_swap_levels_share_one_inversion(family, tmp_path, no_fid_weights):
    folder = save_samples(family, tmp_path / "faces", 3)
    jobs = [EvaluationJob("tiny", target, folder, **dict(FAST, swap=level)) for target, level in
            (("tiny-b", 0), ("tiny-b", 1), ("tiny-c", 0))]  # fmt: skip
    steps = []
    together = run_evaluations([prepare_evaluation(job) for job in jobs], on_invert=lambda done, total: steps.append(total))
    assert len(steps) == FAST["inversion"].steps  # one inversion, not three
    alone = [evaluate(job.source, job.target, folder, **dict(FAST, swap=job.swap)) for job in jobs]
    for shared, single in zip(together, alone):
        assert (shared.target, shared.translation["swap"]) == (single.target, single.translation["swap"])
        assert shared.similarity == pytest.approx(single.similarity, rel=1e-6)
    assert together[0].similarity != pytest.approx(together[1].similarity)
    mixed = [jobs[0], EvaluationJob("tiny", "tiny-c", folder, **dict(FAST, seed=9))]
    with pytest.raises(ValueError, match="share an inversion"):
        run_evaluations([prepare_evaluation(job) for job in mixed])


def test_frechet_distance_with_random_inception_weights(inception_weights, tmp_path):
    a, b = random_images(0, n=2, size=32), random_images(1, n=2, size=32) * 0.5
    assert frechet_distance([a], [a[:1], a[1:]], inception_weights) == pytest.approx(0, abs=1e-3)
    assert frechet_distance([b], [a], inception_weights) > 0.1
    code = tmp_path / "code.pth"
    code.write_bytes(pickle.dumps(ZooError))  # a pickle that refers to a class: never unpickled in full
    with pytest.raises(ZooError, match="not a plain file of weights"):
        frechet_distance([a], [a], code)
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(1)}, other)
    with pytest.raises(ZooError, match="not the FID Inception weights"):
        frechet_distance([a], [a], other)


def frechet_closed_form(mean_a, cov_a, mean_b, cov_b) -> float:
    """|m_a - m_b|² + tr(C_a + C_b - 2 (C_a^½ C_b C_a^½)^½), in float64 through symmetric eigendecompositions."""
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(values.clip(0))) @ vectors.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a).clip(0)
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(cross).sum())


def moments(features: np.ndarray):
    return features.mean(0), np.cov(features, rowvar=False)


def test_closed_form_and_torchmetrics_agree_on_gaussians():
    """FID's numeric core (torchmetrics, which zoo calls) against the closed form between two Gaussians."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Features(torch.nn.Module):  # the "images" are already features; torchmetrics probes it with one image first
        def forward(self, x):
            return x.flatten(1)[:, :8].double()

    scales, shift = torch.linspace(0.5, 2.0, 8, dtype=torch.float64), 0.3
    exact = 8 * shift**2 + float(((scales - 1) ** 2).sum())  # N(0, I) vs N(shift, diag(scales²))
    assert frechet_closed_form(np.zeros(8), np.eye(8), np.full(8, shift), np.diag(scales.numpy() ** 2)) == pytest.approx(exact)
    random = torch.Generator().manual_seed(0)
    a = torch.randn(20_000, 8, generator=random, dtype=torch.float64)
    b = shift + scales * torch.randn(20_000, 8, generator=random, dtype=torch.float64)
    fid = FrechetInceptionDistance(feature=Features())
    fid.update(a, real=True)
    fid.update(b, real=False)
    assert float(fid.compute()) == pytest.approx(frechet_closed_form(*moments(a.numpy()), *moments(b.numpy())), rel=1e-6)
    assert float(fid.compute()) == pytest.approx(exact, rel=0.05)  # sampling error of 20,000 draws


@pytest.mark.slow  # 16 Inception passes at 299 px: about a minute on 2 shared cores
def test_frechet_distance_is_the_closed_form_over_the_inception_features(inception_weights):
    """zoo's plumbing (uint8 conversion, batches, which set is real) around torchmetrics' network, against the closed
    form over the features that network gives the same images."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    generated, real = random_images(2, n=4, size=32), random_images(3, n=4, size=32) * 0.6
    network = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(inception_weights)).inception
    with torch.no_grad():
        features = [network(((images + 1) * 127.5).round().to(torch.uint8)).double().numpy() for images in (generated, real)]
    expected = frechet_closed_form(*moments(features[0]), *moments(features[1]))
    value = frechet_distance([generated[:3], generated[3:]], [real[:1], real[1:]], inception_weights)
    assert value == pytest.approx(expected, rel=1e-4) and expected > 0.1


def test_missing_fid_weights_skip_fid_with_a_note_or_fail_when_asked(family, inputs, no_fid_weights, monkeypatch):
    result, note = plan_fid("auto", "emoji-twemoji", None)
    assert result is None and note.startswith("FID skipped: ") and "\n" not in note
    assert str(no_fid_weights) in note and FID_WEIGHTS_URL in note and "ZOO_FID_WEIGHTS" in note
    with pytest.raises(ZooError, match=FID_WEIGHTS_FILE) as raised:  # before any inversion
        prepare_evaluation(EvaluationJob("tiny", "tiny-b", inputs, metric="l1", fid=True))
    assert FID_WEIGHTS_URL in str(raised.value)
    monkeypatch.setenv("ZOO_FID_WEIGHTS", str(no_fid_weights.parent / "elsewhere.pth"))
    with pytest.raises(ZooError, match="elsewhere.pth \\(\\$ZOO_FID_WEIGHTS\\): no such file"):
        plan_fid(True, "emoji-twemoji", None)


def test_fid_needs_real_images_of_the_target(inputs, inception_weights, monkeypatch):
    monkeypatch.setenv("ZOO_FID_WEIGHTS", str(inception_weights))
    assert plan_fid("auto", "tiny-b", None) == (None, "FID skipped: tiny-b has no bundled data to compute FID against; "
                                                      "give --reference-data DIR with tiny-b images")  # fmt: skip
    with pytest.raises(ZooError, match="no bundled data"):
        plan_fid(True, "tiny-b", None)
    plan, note = plan_fid("auto", "emoji-twemoji", None)
    assert note is None and plan.folder == EMOJI_DATA / "twemoji" and len(plan.reference) == 1030
    with pytest.raises(ZooError, match="at least two images"):
        plan_fid("auto", "tiny-b", inputs / "face0.png")


def expected_test_emoji():
    """From manifest.csv: sort the distinct base emoji, take every tenth from the first, and all their skin tones."""
    with open(EMOJI_DATA / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    base_of = {row["unified"]: row["base_unified"] or row["unified"] for row in rows}
    held_out_bases = sorted(set(base_of.values()))[::10]
    return {code for code, base in base_of.items() if base in held_out_bases}


def test_the_test_split_is_every_tenth_emoji_with_its_skin_tones():
    expected = expected_test_emoji()
    assert 0 < len(expected) < 1030 and any("-1F3FB" in code for code in expected)  # skin tones held out with their base
    for target in ("emoji-twemoji", "emoji-fluent-3d"):
        files = held_out_inputs("emoji-noto", target)
        assert {path.stem for path in files} == expected and len(files) == len(expected)
        assert all(path.parent == EMOJI_DATA / "noto" for path in files)
    subset = choose_inputs("emoji-noto", "emoji-twemoji", "test-split", limit=7, seed=0)
    assert len(subset) == 7 and subset == sorted(subset) and {path.stem for path in subset} <= expected
    assert subset == choose_inputs("emoji-noto", "emoji-twemoji", "test-split", limit=7, seed=0)
    assert subset != choose_inputs("emoji-noto", "emoji-twemoji", "test-split", limit=7, seed=1)
    with pytest.raises(ZooError, match="needs --from to be a declared domain"):
        held_out_inputs("tiny", "emoji-twemoji")
    with pytest.raises(ZooError, match="emoji-twemoji -> emoji-noto has none"):
        held_out_inputs("emoji-twemoji", "emoji-noto")  # the base trains on every emoji


def test_paired_ground_truth_must_cover_every_input(family, inputs, tmp_path):
    partial = save_samples(family, tmp_path / "partial", 1)
    with pytest.raises(ZooError, match="--pairs: 1 of 2 inputs have no image of the same name .*face1.png"):
        prepare_evaluation(EvaluationJob("tiny", "tiny-b", inputs, pairs=partial, **FAST))
    with pytest.raises(ZooError, match="at least two inputs \\(got 1\\)"):
        prepare_evaluation(EvaluationJob("tiny", "tiny-b", inputs / "face0.png", **FAST))
    with pytest.raises(ZooError, match="share no W space"):
        prepare_evaluation(EvaluationJob("tiny", "stranger", inputs, **FAST))


def test_eval_command(family, tmp_path, no_fid_weights):
    folder = save_samples(family, tmp_path / "faces", 3)
    report = tmp_path / "report.json"
    args = ["eval", "--from", "tiny", "--to", "tiny-b", "--inputs", folder, "--metric", "ssim", "--steps", "3", "--pairs", folder,
            "--json", report]  # fmt: skip
    printed = " ".join(zoo(*args).stdout.split())
    for text in ("LPIPS_s", "LPIPS_d", "1 - SSIM (Gaussian 11x11", "reconstruction SSIM", "top-1 retrieval among 3 images",
                 "do-nothing baseline", "FID skipped:", FID_WEIGHTS_URL, f"wrote {report}"):  # fmt: skip
        assert text in printed, text
    saved = json.loads(report.read_text())
    assert saved["metric"] == "ssim" and saved["paired"]["baseline_top1"] == 1 and saved["fid"] is None
    assert saved["translation"]["styles"] == 2 and saved["style_diversity"] > 0
    assert_user_error(zoo(*args, check=False), "report.json: already exists", "--force")
    assert_user_error(zoo(*args, "--force", "--fid", check=False), FID_WEIGHTS_FILE, FID_WEIGHTS_URL)
    assert_user_error(zoo("eval", "--from", "tiny", "--to", "tiny-b", "--inputs", "test-split", check=False), "test-split needs --from")
    assert_user_error(zoo(*args, "--force", "--swap", "1,x", check=False), "--swap '1,x'")
