"""The Hugging Face Hub: `zoo push` publishes an installed model, `zoo pull hf://OWNER/REPO[@REVISION]` installs one.

A push uploads, in one commit, the model's `.safetensors` file, a sample grid (`samples.png`) and a model card
(`README.md`) whose YAML metadata holds, besides the Hub's own keys (library_name, license, tags), a `zoo` table:
the file, its sha256, domain, family, base, resolution and mapping network hash. A pull reads that card first, so a
wrong family is refused before any weights are fetched; then it downloads the file through the Hub's cache
(revisions, `HF_HUB_OFFLINE`, resumed downloads), verifies its sha256 (`--sha256`, a plugin's, else the card's) and
installs it through `import_checkpoint`, the registry's transaction.

A reference is `hf://OWNER/REPO[/PATH][@REVISION]`: without PATH the file is the one the repo's zoo card names; with
PATH (a plugin's `Weights` naming a file in any repo) that file, no card needed. `HF_ENDPOINT` and `HF_HUB_OFFLINE`
are read when zoo calls the Hub (huggingface_hub reads them once, at import); `ZOO_OFFLINE` counts as offline too.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import __version__
from .checkpoint import load_model, read_info
from .environment import offline
from .errors import ChecksumMismatch, ZooError
from .files import sha256_file
from .images import grid, model_provenance, png_text, to_pil
from .registry import Registry, check_name
from .sampling import sample

SCHEME = "hf://"
CARD = "README.md"
SAMPLES = "samples.png"
REFERENCE = re.compile(r"^hf://(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:/(?P<path>[^@]+))?(?:@(?P<revision>[^@]+))?$")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
CARD_KEYS = ("file", "sha256", "domain", "family", "resolution", "mapping_sha256")
HUB_LICENSES = {"mit", "apache-2.0", "bsd-3-clause", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0",
                "openrail", "gpl-3.0", "lgpl-3.0"}  # fmt: skip
SAMPLE_GRID = dict(n=16, seed=0, truncation=0.7)


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    path: str | None = None
    revision: str | None = None

    def __str__(self) -> str:
        return f"{SCHEME}{self.repo_id}{'/' + self.path if self.path else ''}{'@' + self.revision if self.revision else ''}"


def is_hub_ref(text: str) -> bool:
    return str(text).startswith(SCHEME)


def parse_ref(text: str) -> HubRef:
    match = REFERENCE.match(text)
    if match is None or ".." in (match["path"] or "").split("/"):
        raise ZooError(f"{text}: not a Hub reference; write hf://OWNER/REPO, hf://OWNER/REPO@REVISION or hf://OWNER/REPO/FILE@REVISION")
    return HubRef(match["repo"], match["path"], match["revision"])


def hub_offline() -> bool:
    return offline() or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or None


# ---- pull ----


def download(repo_id: str, filename: str, revision: str | None) -> tuple[Path, str]:
    """(the file in the Hub's cache, the commit it comes from); ConnectionError (one line) when it cannot be had."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{SCHEME}{repo_id}"
    try:
        local = hf_hub_download(repo_id, filename, revision=revision, endpoint=_endpoint(), local_files_only=hub_offline())
    except RepositoryNotFoundError:
        raise ConnectionError(f"{where}: no such repository (or it is private: set HF_TOKEN or run `hf auth login`)") from None
    except RevisionNotFoundError:
        raise ConnectionError(f"{where}: no revision {revision!r}") from None
    except LocalEntryNotFoundError:
        state = "the Hub is offline (HF_HUB_OFFLINE or ZOO_OFFLINE)" if hub_offline() else "the Hub cannot be reached"
        raise ConnectionError(f"{where}: {filename} is not in the Hugging Face cache and {state}") from None
    except EntryNotFoundError:
        raise ConnectionError(f"{where}: no file {filename} at revision {revision or 'main'}") from None
    except (HfHubHTTPError, OSError) as error:
        raise ConnectionError(f"{where}: {filename}: {_first_line(error)}") from None
    local = Path(local)
    commit = local.parts[-len(PurePosixPath(filename).parts) - 1]  # the cache keeps snapshots/<commit>/<filename>
    return local, commit


def fetch_verified(ref: HubRef, expected_sha256: str | None) -> tuple[Path, str]:
    """The file `ref` names, in the Hub's cache, with the reference that pins its commit; ChecksumMismatch when its
    sha256 is not `expected_sha256`, ConnectionError when it cannot be fetched."""
    if ref.path is None:
        ref, _ = locate(ref)
    path, commit = download(ref.repo_id, ref.path, ref.revision)
    pinned = HubRef(ref.repo_id, ref.path, commit)
    actual = sha256_file(path)
    if expected_sha256 and actual != expected_sha256.lower():
        raise ChecksumMismatch(f"{pinned}: sha256 {actual[:16]}… is not the expected {expected_sha256.lower()[:16]}…; nothing was installed")
    return path, str(pinned)


def locate(ref: HubRef) -> tuple[HubRef, dict]:
    """The repo's zoo model card read at `ref.revision`: (the file it names at that commit, the card's zoo table)."""
    card, commit = download(ref.repo_id, CARD, ref.revision)
    facts = card_facts(card, HubRef(ref.repo_id, revision=ref.revision))
    return HubRef(ref.repo_id, facts["file"], commit), facts


def card_facts(card: Path, ref: HubRef) -> dict:
    """The `zoo` table of a model card's YAML metadata, its keys checked."""
    from huggingface_hub.repocard import metadata_load

    try:
        facts = (metadata_load(card) or {}).get("zoo")
    except (ValueError, UnicodeDecodeError) as error:  # yaml's errors are ValueErrors
        raise ZooError(f"{ref}: its {CARD} has unreadable metadata ({_first_line(error)}); the repo was not pushed by zoo") from None
    if not isinstance(facts, dict):
        raise ZooError(f"{ref}: its {CARD} has no zoo metadata (not pushed by `zoo push`); name the file, "
                       f"hf://{ref.repo_id}/FILE, and give --sha256")  # fmt: skip
    missing = [key for key in CARD_KEYS if key not in facts]
    bad = [key for key in ("sha256", "mapping_sha256") if key in facts and not SHA256.match(str(facts[key]))]
    if missing or bad or not isinstance(facts["file"], str) or "/" in facts["file"] or facts["file"] in ("", ".", ".."):
        raise ZooError(f"{ref}: its {CARD}'s zoo metadata lacks {', '.join(missing) or 'a valid ' + ', '.join(bad or ['file'])}; "
                       "re-push the model with `zoo push`")  # fmt: skip
    return facts


def check_family(facts: dict, ref: HubRef) -> None:
    """Refuse a model whose mapping network is not that of the installed models of its family (before downloading)."""
    installed = Registry().domains()
    members = sorted(name for name, entry in installed.items() if entry.family == facts["family"])
    if members and installed[members[0]].mapping_sha256 != facts["mapping_sha256"]:
        base = facts.get("base") if facts.get("base") in members else members[0]
        raise ZooError(
            f"{ref}: its mapping network ({facts['mapping_sha256'][:16]}…) is not that of family '{facts['family']}' "
            f"installed here ({base}: {installed[base].mapping_sha256[:16]}…), so it is another family; nothing was downloaded"
        )


def pull_from_hub(reference: str, *, name: str | None = None, sha256: str | None = None, force: bool = False) -> dict:
    """Install the zoo model the Hub repo `reference` holds (under `name`, default the card's domain); returns the
    registry entry. The sha256 checked is `sha256` when given (it must match the card's), else the card's."""
    from .importers import import_checkpoint

    ref = parse_ref(reference)
    try:
        pinned, facts = locate(ref) if ref.path is None else (ref, None)
        if facts is None and not sha256:
            raise ZooError(f"{ref}: names a file, so no zoo card pins it; pass its hash with --sha256 HEX")
        expected = _expected_sha256(sha256, facts, ref)
        if facts is not None:
            check_family(facts, ref)
        name = check_name(name or (facts or {}).get("domain") or PurePosixPath(ref.path).stem)
        Registry().check_free(name, force)  # before a download that may take long
        path, source = fetch_verified(pinned, expected)
    except ConnectionError as error:
        raise ZooError(f"{error}; nothing was installed") from None
    if facts is None:  # a file named in the reference: any format zoo imports, into a family of its own as `zoo import`
        return import_checkpoint(path, name, force=force, source=source)
    info = read_info(path)
    if (info.family, info.mapping_sha256) != (facts["family"], facts["mapping_sha256"]):
        raise ZooError(f"{source}: the file's family {info.family!r} or mapping network differs from what its {CARD} says; "
                       "nothing was installed (the repo is inconsistent: re-push it)")  # fmt: skip
    return import_checkpoint(path, name, family=info.family, force=force, source=source)


def _expected_sha256(given: str | None, facts: dict | None, ref: HubRef) -> str:
    card = (facts or {}).get("sha256")
    given = given.lower() if given else None
    if given is not None and not SHA256.match(given):
        raise ZooError(f"--sha256 {given!r}: not 64 hex digits")
    if given and card and given != card:
        raise ZooError(f"--sha256 {given[:16]}… differs from the {card[:16]}… that {ref}'s {CARD} names; nothing was downloaded")
    return given or card


# ---- push ----


def push(name: str, repo_id: str, *, private: bool = False) -> str:
    """Upload installed model `name` to the Hub repo `repo_id` (created if missing) with its sample grid and model
    card, in one commit; returns the commit's id."""
    from huggingface_hub import CommitOperationAdd, HfApi

    if not REPO_ID.match(repo_id):
        raise ZooError(f"{repo_id}: not a Hub repository id; write OWNER/REPO (e.g. your-name/zoo-{name})")
    if hub_offline():
        raise ZooError("zoo push needs the Hub: unset HF_HUB_OFFLINE and ZOO_OFFLINE")
    registry = Registry()
    entry = registry.get(check_name(name))
    if entry is None:
        raise ZooError(f"model {name!r} is not installed; see `zoo list --installed`")
    path = registry.checkpoint_path(entry)
    model = load_model(path, expected_sha256=entry.sha256)
    operations = [
        CommitOperationAdd(path_in_repo=path.name, path_or_fileobj=str(path)),
        CommitOperationAdd(path_in_repo=SAMPLES, path_or_fileobj=sample_grid_png(model)),
        CommitOperationAdd(path_in_repo=CARD, path_or_fileobj=model_card(entry, repo_id).encode("utf-8")),
    ]
    api = HfApi(endpoint=_endpoint())
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.create_commit(repo_id, operations=operations, commit_message=f"zoo push {name} (sha256 {entry.sha256[:16]})")
    except _upload_errors() as error:
        raise ZooError(f"{SCHEME}{repo_id}: the upload failed ({_first_line(error)}); check HF_TOKEN (or `hf auth login`) "
                       "and that you may write to that repository")  # fmt: skip
    return commit.oid


def _upload_errors() -> tuple[type[BaseException], ...]:
    """What a failed upload raises: the Hub's answers, and the errors of the HTTP library under huggingface_hub (httpx2
    or httpx, whose errors are not OSErrors; requests' are)."""
    from huggingface_hub.errors import HfHubHTTPError

    errors = [HfHubHTTPError, OSError, ValueError]
    for library in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            errors.append(importlib.import_module(library).HTTPError)
    return tuple(errors)


def sample_grid_png(model) -> bytes:
    """The card's picture: 16 samples (seed 0, truncation 0.7), small models enlarged to about 512 px across, with the
    provenance every PNG zoo writes holds."""
    picture = to_pil(grid(sample(model.generator, **SAMPLE_GRID)))
    scale = max(1, 512 // picture.width)
    buffer = io.BytesIO()
    picture.resize((picture.width * scale, picture.height * scale), resample=0).save(
        buffer, format="PNG", pnginfo=png_text({"command": "push", "models": [model_provenance(model)], **SAMPLE_GRID}))
    return buffer.getvalue()


def hub_license(data_license: str) -> str:
    """The Hub's licence id for a licence as plugins write it ("CC BY 4.0; attribution ..." -> cc-by-4.0), else other."""
    identifier = re.sub(r"\s+", "-", re.split(r"[;:(]", data_license)[0].strip().lower())
    return identifier if identifier in HUB_LICENSES else "other"


def model_card(entry, repo_id: str) -> str:
    """README.md: the Hub's YAML metadata with zoo's table (what `zoo pull` checks), then the card for people."""
    from huggingface_hub import ModelCardData

    lineage = entry.lineage
    base = lineage.get("base")
    data_license = _data_license(entry)
    facts = {"format": "zoo-safetensors", "file": Path(entry.file).name, "sha256": entry.sha256, "domain": entry.name,
             "family": entry.family, "base": base, "resolution": entry.resolution,
             "mapping_sha256": entry.mapping_sha256, "zoo_version": __version__}  # fmt: skip
    license = hub_license(data_license)
    metadata = ModelCardData(
        library_name="zoo", license=license, license_name="see-card" if license == "other" else None,
        tags=["zoo", "stylegan2", "gan", "image-to-image", f"family-{entry.family}"],
        pipeline_tag="unconditional-image-generation", zoo=facts,
    ).to_yaml()  # fmt: skip
    made = f"fine-tuned from `{base}` with the mapping network frozen" if base else "trained from scratch: the base of its family"
    translate = f"zoo translate --from {base} --to {entry.name} face.png" if base else f"zoo translate --from {entry.name} --to all face.png"
    return f"""---
{metadata}
---

# {entry.name}

A StyleGAN2 model of the domain `{entry.name}` for [zoo](https://pypi.org/project/zoo-stylegan/), {made}. Every model of
the family `{entry.family}` shares one mapping network (sha256 `{entry.mapping_sha256}`), so an image inverted in one
is generated by any other: that is how zoo translates between domains.

| | |
|---|---|
| domain | `{entry.name}` |
| family | `{entry.family}` |
| base | {f'`{base}`' if base else 'none (this is the base)'} |
| resolution | {entry.resolution} px |
| file | `{facts['file']}` (zoo's safetensors format) |
| sha256 | `{entry.sha256}` |
| training data licence | {data_license} |

![{SAMPLE_GRID['n']} samples, seed {SAMPLE_GRID['seed']}, truncation {SAMPLE_GRID['truncation']}]({SAMPLES})

## Use it with zoo

```bash
pip install zoo-stylegan
zoo pull hf://{repo_id}          # verifies the sha256 above and the family, then installs it
zoo sample {entry.name} --n 16 --seed 0 --truncation 0.7 --out samples.png
{translate}
```

`zoo pull hf://{repo_id}@REVISION` pins a commit; the download goes through the Hugging Face cache (`HF_HUB_OFFLINE=1`
reinstalls from it). {f'Translating needs the base `{base}` installed: a model of another family is refused.' if base else ''}

## Lineage

```json
{json.dumps(lineage, indent=2, sort_keys=True)}
```
"""


def _data_license(entry) -> str:
    """The licence of the training data: as the lineage records it, else as the domain's plugin declares it."""
    from .plugins import registered_domains

    spec = registered_domains().get(entry.name)
    return str(entry.lineage.get("data_license") or (spec.data.license if spec else "not recorded"))


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
