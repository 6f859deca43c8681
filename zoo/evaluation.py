"""Measuring a translation A -> B as the paper's Tables II and III do, and against paired ground truth where it exists.

`evaluate` translates images of A into B in memory (the paper's Eq. 4, with the options of `zoo translate`) and
reports, each number labelled with the metric that made it:

- similarity, the paper's LPIPS_s: the mean distance of each output to its own input;
- diversity, the paper's LPIPS_d: the mean distance between random pairs of distinct outputs; with `styles` >= 2 also
  the mean distance between the outputs of one input under different random appearance codes (Eq. 10);
- reconstruction SSIM: the inversion's reconstruction in A against the input (Table III);
- FID of the outputs against B's data (torchmetrics; the Inception weights come from a local file, never downloaded);
- with paired ground truth (B's image of the same name, e.g. the same emoji in another style): the distance of each
  output to its true counterpart, the same for the untranslated input (the do-nothing baseline), and top-1 retrieval
  accuracy: how often the counterpart is the image of B's whole set nearest to the output (and to the input).
  Beside the do-nothing baseline, the colour-transfer baseline (zoo/baselines.py) when both domains declare their data.

Every image's metric features are computed once (`Metric.features`); every distance comes from the cached features.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

from .baselines import colour_transfer, colour_transfer_tables
from .checkpoint import ZooModel
from .data import list_image_files
from .distance import DEFAULT_METRIC, pairwise_sums
from .errors import ZooError, check_in_range
from .files import atomic_write_bytes, sha256_file
from .images import expand_inputs, load_images, to_uint8
from .inversion import InversionSettings, StepCallback, invert_in_batches, reconstruction_scores
from .metrics import Metric, get_metric, join_features, map_features
from .photos import AlignSettings, load_one_each
from .plugins import registered_domains
from .registry import load
from .translation import (  # fmt: skip
    Renderer,
    TranslatedImages,
    check_same_family,
    check_styles,
    resolve_method,
    translate_images,
    translation_options,
)

TEST_SPLIT = "test-split"
DIVERSITY_PAIRS = 1000  # random pairs of distinct outputs (every pair when there are fewer)
CHUNK = 256  # images per feature pass and image pairs per distance call: bounds the memory
FID_WEIGHTS_VARIABLE = "ZOO_FID_WEIGHTS"
FID_WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_FILE = FID_WEIGHTS_URL.rsplit("/", 1)[1]  # its name in torch's hub cache, where torch-fidelity puts it
FID_FEATURES = 2048  # Inception-v3's pool features, as in the paper's (and everyone's) FID
FID_LABEL = f"FID (torchmetrics, Inception-v3 pool features, {FID_FEATURES}-d)"
SSIM_LABEL = "SSIM (Gaussian 11x11, σ 1.5; 1 = identical)"


@dataclass
class EvaluationJob:
    """What to measure: `inputs` of `source` translated into `target` (options as in `zoo translate`)."""

    source: str
    target: str
    inputs: str | Path | Sequence[str | Path]  # image files or folders, or "test-split"
    metric: str | Metric = DEFAULT_METRIC
    swap: int | None = None  # None: the target's recipe
    swap_mode: str = "weights"
    appearance_layers: int | None = None
    truncation: float | None = None
    styles: int = 2  # outputs per input with random appearance codes, for the style diversity (below 2: not measured)
    inversion: InversionSettings | None = None
    seed: int = 0  # of the inversion, the appearance codes, the diversity pairs and the --limit subset
    batch: int = 16  # images inverted together
    fid: bool | str = "auto"  # "auto": when the Inception weights are on this machine
    reference_data: str | Path | None = None  # FID's real images (default: the target domain's bundled data)
    pairs: str | Path | None = None  # paired ground truth (default: the target domain's bundled data)
    limit: int | None = None  # a seeded random subset of this many inputs
    align: AlignSettings | None = None  # photos aligned as the source's data declares, the largest face of each


@dataclass
class FidPlan:
    weights: Path
    folder: Path
    reference: list[Path]  # the real images


@dataclass
class PairedSet:
    """B's images for paired ground truth: `files[truth[i]]` is input i's counterpart."""

    folder: Path
    files: list[Path]
    truth: torch.Tensor  # (inputs,) int64


@dataclass
class PreparedEvaluation:
    """A checked job: models in one family, inputs read, metric built, FID and paired ground truth resolved."""

    job: EvaluationJob
    source: ZooModel
    target: ZooModel
    renderer: Renderer
    files: list[Path]
    images: torch.Tensor
    metric: Metric
    fid: FidPlan | None
    pairs: PairedSet | None
    notes: list[str]
    device: torch.device
    colour_tables: torch.Tensor | None = None  # the colour-transfer baseline's lookup tables, with paired ground truth
    translator: Any = None  # the distilled method's network (zoo/translator.py)


@dataclass
class FidScore:
    value: float
    reference: str  # the folder of real images
    reference_images: int
    outputs: int
    weights: str


@dataclass
class PairedScores:
    """Means over the inputs; top-1 is the fraction whose nearest image among `candidates` is the true counterpart."""

    folder: str
    candidates: int
    distance: float  # output <-> its true counterpart
    baseline_distance: float  # untranslated input <-> its counterpart
    top1: float
    baseline_top1: float
    colour_distance: float | None = None  # the colour-transfer baseline (zoo/baselines.py), when both domains have data
    colour_top1: float | None = None


@dataclass
class Evaluation:
    """One evaluation's numbers: distances in the units of `label` (the metric's); SSIM and FID in their own."""

    source: str
    target: str
    source_sha256: str
    target_sha256: str
    metric: str
    label: str
    inputs: list[str]
    translation: dict  # the translation options used, and styles
    inversion: dict  # the inversion settings, and its loss
    similarity: float  # LPIPS_s: output <-> its input
    diversity: float  # LPIPS_d: random pairs of distinct outputs
    diversity_pairs: int
    style_diversity: float | None  # outputs of one input under different appearance codes
    reconstruction_ssim: float | None  # the inversion's reconstruction <-> its input, in the source domain (None: no inversion)
    fid: FidScore | None
    paired: PairedScores | None
    notes: list[str]  # what was skipped, and why
    per_input: list[dict]

    def to_dict(self) -> dict:
        return {**asdict(self), "labels": {"distances": self.label, "reconstruction_ssim": SSIM_LABEL, "fid": FID_LABEL}}


def evaluate(
    source: str, target: str, inputs, *, device: torch.device | str = "cpu", on_invert: StepCallback | None = None, **options
) -> Evaluation:
    """Translate `inputs` of `source` into `target` and measure the outputs; `options` are EvaluationJob's fields."""
    prepared = prepare_evaluation(EvaluationJob(source, target, inputs, **options), device=device)
    return run_evaluation(prepared, on_invert=on_invert)


# ---------------------------------------------------------------------------------------------------------------------
# Checks before any work


def prepare_evaluation(job: EvaluationJob, device: torch.device | str = "cpu") -> PreparedEvaluation:
    """Everything that can fail on bad input, before the inversion: models, inputs, metric, FID and pairs."""
    check_styles(job.styles)
    job.inversion = resolve_method(job.inversion, [job.target])
    if job.fid not in ("auto", True, False):
        raise ZooError(f"fid must be 'auto', True or False (got {job.fid!r})")
    device = torch.device(device)
    source, target = load(job.source, device=device), load(job.target, device=device)
    check_same_family(source, target)
    if source.info.config.size != target.info.config.size:
        raise ZooError(f"{job.source} makes {source.info.config.size}px images and {job.target} {target.info.config.size}px; "
                       "outputs are compared with their inputs, so evaluate models of one resolution")  # fmt: skip
    options = translation_options(job.target, swap=job.swap, swap_mode=job.swap_mode, appearance_layers=job.appearance_layers,
                                  truncation=job.truncation, seed=job.seed, batch=job.batch)  # fmt: skip
    renderer = Renderer(source.generator, target.generator, options)
    files = choose_inputs(job.source, job.target, job.inputs, limit=job.limit, seed=job.seed)
    images = load_one_each(files, job.source, source.info.config.size, job.align)
    metric = get_metric(job.metric, device) if isinstance(job.metric, str) else job.metric
    fid, fid_note = plan_fid(job.fid, job.target, job.reference_data)
    pairs, pairs_note = plan_pairs(job.target, job.pairs, files)
    notes = [note for note in (fid_note, pairs_note) if note]
    if fid and len(files) < FID_FEATURES:
        notes.append(f"FID from {len(files)} outputs (fewer than its {FID_FEATURES} feature dimensions) is biased upward; "
                     "compare only FIDs from equally many inputs (the paper used 2000)")  # fmt: skip
    tables = colour_baseline_tables(job.source, job.target, source.info.config.size) if pairs else None
    translator = None
    if job.inversion.method == "distilled":
        from .translator import family_translator

        translator = family_translator(source, [job.target], job.inversion.translator)
    return PreparedEvaluation(job, source, target, renderer, files, images, metric, fid, pairs, notes, device, tables, translator)


def colour_baseline_tables(source: str, target: str, size: int) -> torch.Tensor | None:
    """The colour-transfer baseline's tables from `source`'s training images to `target`'s; None unless both domains
    declare their data (as the emoji family's do)."""
    try:
        return colour_transfer_tables(source, target, size)
    except ZooError:
        return None


def choose_inputs(source: str, target: str, inputs, *, limit: int | None = None, seed: int = 0) -> list[Path]:
    """The input files: `inputs` expanded (files and folders) or the test split; a seeded random `limit` of them."""
    if inputs == TEST_SPLIT:
        files = held_out_inputs(source, target)
    else:
        files = expand_inputs([inputs] if isinstance(inputs, (str, Path)) else list(inputs))
    if limit is not None:
        check_in_range("--limit", limit, 2)
    if limit is not None and limit < len(files):
        chosen = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:limit]
        files = [files[index] for index in sorted(chosen.tolist())]
    if len(files) < 2:
        raise ZooError(f"an evaluation needs at least two inputs (got {len(files)}): diversity and FID compare outputs with each other")
    return files


def held_out_inputs(source: str, target: str) -> list[Path]:
    """The held-out test images: the source domain's bundled images that the target domain's training filter
    (`DataSource.include`) rejects, so that no model of the target domain has trained on them."""
    domains = registered_domains()
    bundled = domains[source].data.bundled if source in domains else None
    include = domains[target].data.include if target in domains else None
    if bundled is None or include is None:
        raise ZooError(f"--inputs {TEST_SPLIT} needs --from to be a declared domain with bundled data and --to one with a "
                       f"training split (as in the emoji family); {source} -> {target} has none, so give a folder of inputs")  # fmt: skip
    held_out = [path for path in list_image_files(bundled) if not include(path)]
    if not held_out:
        raise ZooError(f"--inputs {TEST_SPLIT}: {target} trains on every image of {bundled}; give a folder of inputs")
    return held_out


def bundled_data(domain: str) -> Path | None:
    spec = registered_domains().get(domain)
    return spec.data.bundled if spec else None


def plan_fid(fid: bool | str, target: str, reference_data: str | Path | None) -> tuple[FidPlan | None, str | None]:
    """FID's weights and real images, or a note saying why FID is skipped (a ZooError instead when `fid` is True)."""
    if fid is False:
        return None, None
    folder = Path(reference_data) if reference_data else bundled_data(target)
    reference = expand_inputs([folder]) if folder else []
    if folder and len(reference) < 2:
        raise ZooError(f"{folder}: FID needs at least two images of {target}; give another --reference-data")
    try:
        weights = fid_weights_file()
        if folder is None:
            raise ZooError(f"{target} has no bundled data to compute FID against; give --reference-data DIR with {target} images")
    except ZooError as error:
        if fid is True:
            raise
        return None, f"FID skipped: {error}"
    return FidPlan(weights, folder, reference), None


def fid_weights_file() -> Path:
    """The Inception weights FID uses: $ZOO_FID_WEIGHTS, else torch-fidelity's file in torch's hub cache; never downloaded."""
    if os.environ.get(FID_WEIGHTS_VARIABLE):
        path = Path(os.environ[FID_WEIGHTS_VARIABLE])
        if not path.is_file():
            raise ZooError(f"{path} (${FID_WEIGHTS_VARIABLE}): no such file; download {FID_WEIGHTS_URL} there or unset the variable")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILE
    if not path.is_file():
        raise ZooError(f"{path}: FID needs these Inception weights, which are not on this machine; download "
                       f"{FID_WEIGHTS_URL} into {path.parent} (or set ${FID_WEIGHTS_VARIABLE} to the file)")  # fmt: skip
    return path


def plan_pairs(target: str, pairs: str | Path | None, inputs: list[Path]) -> tuple[PairedSet | None, str | None]:
    """Each input's counterpart: the image of the same name (any suffix) in `pairs`, default the target's bundled data.

    Without counterparts for every input there are no paired numbers: a ZooError when `pairs` was given, else a note.
    """
    folder = Path(pairs) if pairs else bundled_data(target)
    if folder is None:
        return None, None
    files = expand_inputs([folder])
    position = {}
    for index, path in enumerate(files):
        if path.stem in position:
            raise ZooError(f"{path}: {folder} holds two images named {path.stem}; paired ground truth needs one image per name")
        position[path.stem] = index
    missing = [path.name for path in inputs if path.stem not in position]
    if missing:
        problem = f"{len(missing)} of {len(inputs)} inputs have no image of the same name in {folder} (e.g. {missing[0]})"
        if pairs:
            raise ZooError(f"--pairs: {problem}")
        return None, f"paired metrics skipped: {problem}"
    return PairedSet(folder, files, torch.tensor([position[path.stem] for path in inputs])), None


# ---------------------------------------------------------------------------------------------------------------------
# The work


def run_evaluation(prepared: PreparedEvaluation, on_invert: StepCallback | None = None) -> Evaluation:
    """Translate the inputs (inverting them with the source; `on_invert(done, total)` per step), then score the outputs."""
    return run_evaluations([prepared], on_invert)[0]


def run_evaluations(prepared: Sequence[PreparedEvaluation], on_invert: StepCallback | None = None) -> list[Evaluation]:
    """Several evaluations of the same inputs of the same source (one per target, or per swap level) on ONE inversion."""
    first = prepared[0].job
    if first.inversion.method == "distilled":
        return [score(item, translate_distilled(item)) for item in prepared]
    for other in prepared[1:]:
        job = other.job
        if (job.source, job.inputs, job.inversion, job.seed, job.batch, job.limit) != (first.source, first.inputs, first.inversion,
                                                                                         first.seed, first.batch, first.limit):
            raise ValueError("evaluations that share an inversion need the same source, inputs, inversion settings and seed")
    inverted = invert_in_batches(prepared[0].source, prepared[0].images, first.inversion, batch_size=first.batch, seed=first.seed,
                                 on_step=on_invert)  # fmt: skip
    return [score(item, translate_images(item.renderer, inverted, styles=item.job.styles if item.job.styles >= 2 else 0))
            for item in prepared]  # fmt: skip


def translate_distilled(prepared: PreparedEvaluation) -> TranslatedImages:
    """The distilled method's outputs (one forward pass; no inversion), with `styles` random appearance codes."""
    from .translator import distilled_rows

    styles = prepared.job.styles if prepared.job.styles >= 2 else 0
    rows = distilled_rows(prepared.translator, prepared.images, prepared.job.target, prepared.renderer, styles, None).clamp(-1, 1)
    return TranslatedImages(outputs=rows[:, 0], styles=rows[:, 1:] if styles else None, inversion=None)


def score(prepared: PreparedEvaluation, translated: TranslatedImages) -> Evaluation:
    job, metric, device = prepared.job, prepared.metric, prepared.device
    outputs = cached_features(metric, translated.outputs.split(CHUNK), device)
    inputs = cached_features(metric, prepared.images.split(CHUNK), device)
    same = torch.arange(len(prepared.files))
    similarity = indexed_distances(metric, outputs, same, inputs, same)
    first, second = random_pairs(len(prepared.files), DIVERSITY_PAIRS, job.seed)
    diversity = indexed_distances(metric, outputs, first, outputs, second)
    inversion = translated.inversion
    ssim = reconstruction_scores(inversion.reconstructions.cpu(), prepared.images)["ssim"] if inversion else None
    per_input = [{"input": path.name, "similarity": float(similarity[index]),
                  "reconstruction_ssim": None if ssim is None else float(ssim[index])}
                 for index, path in enumerate(prepared.files)]  # fmt: skip
    paired = None
    if prepared.pairs:
        colour = None
        if prepared.colour_tables is not None:
            colour = cached_features(metric, colour_transfer(prepared.images, prepared.colour_tables).split(CHUNK), device)
        paired, records = paired_scores(metric, prepared.pairs, outputs, inputs, prepared.target.info.config.size, device, colour)
        per_input = [{**record, **paired_record} for record, paired_record in zip(per_input, records)]
    return Evaluation(
        source=job.source,
        target=job.target,
        source_sha256=sha256_file(prepared.source.info.path),
        target_sha256=sha256_file(prepared.target.info.path),
        metric=metric.name,
        label=metric.label,
        inputs=[path.name for path in prepared.files],
        translation={**asdict(prepared.renderer.options), "styles": job.styles},
        inversion=asdict(job.inversion) if inversion is None else {**asdict(inversion.settings), "loss": inversion.loss_label,
                   "precision": inversion.precision, "seconds": round(inversion.seconds, 2)},  # fmt: skip
        similarity=float(similarity.mean()),
        diversity=float(diversity.mean()),
        diversity_pairs=len(first),
        style_diversity=style_diversity(metric, translated.styles, device) if translated.styles is not None else None,
        reconstruction_ssim=None if ssim is None else float(ssim.mean()),
        fid=fid_score(prepared.fid, translated.outputs, prepared.target.info.config.size, device) if prepared.fid else None,
        paired=paired,
        notes=prepared.notes,
        per_input=per_input,
    )


def cached_features(metric: Metric, batches: Iterable[torch.Tensor], device: torch.device) -> Any:
    """The metric's features of every image, computed once, batch by batch."""
    with torch.no_grad():
        return join_features([metric.features(images.to(device)) for images in batches])


def image_batches(files: list[Path], size: int) -> Iterator[torch.Tensor]:
    """The files' images, CHUNK at a time (a large folder is never held in memory whole)."""
    for start in range(0, len(files), CHUNK):
        yield load_images(files[start : start + CHUNK], size)


def indexed_distances(metric: Metric, features_a, index_a: torch.Tensor, features_b, index_b: torch.Tensor) -> torch.Tensor:
    """distance(image a[index_a[k]], image b[index_b[k]]) for every k, from cached features, CHUNK pairs at a time."""
    distances = []
    with torch.no_grad():
        for chunk_a, chunk_b in zip(index_a.split(CHUNK), index_b.split(CHUNK)):
            selected_a = map_features(lambda tensor: tensor[chunk_a.to(tensor.device)], features_a)
            selected_b = map_features(lambda tensor: tensor[chunk_b.to(tensor.device)], features_b)
            distances.append(metric.distance_between(selected_a, selected_b).cpu())
    return torch.cat(distances)


def random_pairs(count: int, pairs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to `pairs` distinct pairs i < j of `count` items, drawn without replacement (every pair when there are fewer)."""
    every = torch.combinations(torch.arange(count), 2)
    chosen = every[torch.randperm(len(every), generator=torch.Generator().manual_seed(seed))[:pairs]]
    return chosen[:, 0], chosen[:, 1]


def nearest(metric: Metric, queries, query_count: int, candidates, candidate_count: int) -> torch.Tensor:
    """(query_count,): for each query, the index of the candidate at the smallest distance (the first one on ties).

    Candidates are taken CHUNK at a time as slices of their cached features and the query's features are expanded to
    match (views, not copies), so a query against a thousand candidates moves no image data around."""
    closest = []
    with torch.no_grad():
        for query in range(query_count):
            distances = []
            for start in range(0, candidate_count, CHUNK):
                chunk = map_features(lambda tensor: tensor[start : start + CHUNK], candidates)
                size = min(CHUNK, candidate_count - start)
                one = map_features(lambda tensor: tensor[query : query + 1].expand(size, *tensor.shape[1:]), queries)
                distances.append(metric.distance_between(one, chunk).cpu())
            closest.append(torch.cat(distances).argmin())
    return torch.stack(closest)


def style_diversity(metric: Metric, styles: torch.Tensor, device: torch.device) -> float:
    """Mean distance between the outputs of one input under different appearance codes, over inputs and code pairs."""
    count, codes = styles.shape[:2]
    features = [cached_features(metric, styles[:, code].split(CHUNK), device) for code in range(codes)]
    sums = pairwise_sums(metric, features)  # (codes, codes), each summed over the inputs
    return float(sums.triu(1).sum()) / (codes * (codes - 1) // 2 * count)


def paired_scores(metric: Metric, pairs: PairedSet, outputs, inputs, size: int, device, colour=None) -> tuple[PairedScores, list[dict]]:
    """Distances to the true counterparts and top-1 retrieval among all of B's images, for the outputs and for the
    untranslated inputs (and the colour-transferred inputs, given their features); per input: both distances and the
    names of both nearest images."""
    candidates = cached_features(metric, image_batches(pairs.files, size), device)
    same = torch.arange(len(pairs.truth))
    distance = indexed_distances(metric, outputs, same, candidates, pairs.truth)
    baseline = indexed_distances(metric, inputs, same, candidates, pairs.truth)
    closest = nearest(metric, outputs, len(same), candidates, len(pairs.files))
    baseline_closest = nearest(metric, inputs, len(same), candidates, len(pairs.files))
    records = [
        {"paired_distance": float(distance[index]), "baseline_paired_distance": float(baseline[index]),
         "nearest": pairs.files[closest[index]].name, "baseline_nearest": pairs.files[baseline_closest[index]].name}
        for index in range(len(same))
    ]  # fmt: skip
    scores = PairedScores(
        folder=str(pairs.folder),
        candidates=len(pairs.files),
        distance=float(distance.mean()),
        baseline_distance=float(baseline.mean()),
        top1=float((closest == pairs.truth).double().mean()),
        baseline_top1=float((baseline_closest == pairs.truth).double().mean()),
    )
    if colour is not None:
        scores.colour_distance = float(indexed_distances(metric, colour, same, candidates, pairs.truth).mean())
        scores.colour_top1 = float((nearest(metric, colour, len(same), candidates, len(pairs.files)) == pairs.truth).double().mean())
    return scores, records


# ---------------------------------------------------------------------------------------------------------------------
# FID


def fid_score(plan: FidPlan, outputs: torch.Tensor, size: int, device: torch.device) -> FidScore:
    value = frechet_distance(outputs.split(CHUNK), image_batches(plan.reference, size), plan.weights, device=device)
    return FidScore(value, str(plan.folder), len(plan.reference), len(outputs), str(plan.weights))


def frechet_distance(generated: Iterable[torch.Tensor], real: Iterable[torch.Tensor], weights: Path, *, device="cpu") -> float:
    """FID (torchmetrics) between two sets of [-1, 1] images, fed batch by batch, with the Inception weights in `weights`."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    check_fid_weights(weights)
    try:
        fid = FrechetInceptionDistance(feature=FID_FEATURES, feature_extractor_weights_path=str(weights)).to(device)
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        raise ZooError(f"{weights}: not the FID Inception weights ({str(error).splitlines()[0]}); download {FID_WEIGHTS_URL}") from None
    with torch.no_grad():
        for is_real, batches in ((True, real), (False, generated)):
            for images in batches:
                fid.update(to_uint8(images).to(device), real=is_real)
        return float(fid.compute())


def check_fid_weights(path: Path) -> None:
    """The file must hold only tensors: torchmetrics unpickles it in full, so no code from it may get that far."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise ZooError(f"{path}: not a plain file of weights ({type(error).__name__}); download {FID_WEIGHTS_URL} again") from None


# ---------------------------------------------------------------------------------------------------------------------
# Output


def summary_rows(result: Evaluation) -> list[tuple[str, str, str]]:
    """(what, value, metric) for every number, in the order of the paper's tables: what `zoo eval` prints."""
    label = result.label
    rows = [
        (f"similarity: output vs its input (LPIPS_s), mean of {len(result.inputs)}", f"{result.similarity:.4f}", label),
        (f"diversity: {result.diversity_pairs} random pairs of outputs (LPIPS_d)", f"{result.diversity:.4f}", label),
    ]
    if result.style_diversity is not None:
        styles = result.translation["styles"]
        rows.append((f"diversity: one input's outputs under {styles} appearance codes", f"{result.style_diversity:.4f}", label))
    if result.reconstruction_ssim is not None:
        rows.append((f"reconstruction SSIM of the inversion in {result.source}", f"{result.reconstruction_ssim:.4f}", SSIM_LABEL))
    if result.fid:
        fid = result.fid
        rows.append((f"FID: {fid.outputs} outputs vs {fid.reference_images} images of {fid.reference}", f"{fid.value:.2f}", FID_LABEL))
    if result.paired:
        paired, nearest_by = result.paired, f"nearest by {label}"
        rows += [
            ("paired distance: output vs its true counterpart", f"{paired.distance:.4f}", label),
            ("paired distance: input vs its counterpart (do-nothing baseline)", f"{paired.baseline_distance:.4f}", label),
            (f"top-1 retrieval among {paired.candidates} images of {paired.folder}: output", f"{paired.top1:.3f}", nearest_by),
            ("top-1 retrieval: input (do-nothing baseline)", f"{paired.baseline_top1:.3f}", nearest_by),
        ]
        if paired.colour_distance is not None:
            rows += [
                ("paired distance: colour-transferred input (colour-transfer baseline)", f"{paired.colour_distance:.4f}", label),
                ("top-1 retrieval: colour-transferred input", f"{paired.colour_top1:.3f}", nearest_by),
            ]
    return rows


def save_evaluation(result: Evaluation | Sequence[Evaluation], path: str | Path, *, force: bool = False) -> Path:
    """The result (or a list of results) as JSON, written atomically; never over an existing file unless `force`."""
    path = Path(path)
    if path.exists() and not force:
        raise ZooError(f"{path}: already exists; pass --force to overwrite it or choose another --json")
    payload = result.to_dict() if isinstance(result, Evaluation) else [item.to_dict() for item in result]
    atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode("utf-8"))
    return path
