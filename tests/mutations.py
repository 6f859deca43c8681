"""Break the paper's method on purpose and check that the default tests notice (docs/testing.md).

    python tests/mutations.py            # every mutation
    python tests/mutations.py NAME ...   # some of them
    python tests/mutations.py --list

Each mutation replaces one function of zoo, in memory, then `pytest -q -m "not slow"` runs the test files that cover
it. The patch is applied at interpreter start-up by a `sitecustomize` module in a temporary directory put first on
PYTHONPATH (with ZOO_MUTATION naming the mutation), so the `zoo` commands the tests start as subprocesses run the
mutated code too. A mutation is killed when at least one test fails, and survives when all pass; the script prints a
table (with how many tests failed) and exits 1 if any mutation survived.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def replace(module_name: str, name: str, new) -> None:
    """Replace `module.name` in zoo, and every zoo module's reference to the same object (from-imports)."""
    import importlib

    for module in ("zoo.swap", "zoo.translation", "zoo.inversion", "zoo.distance", "zoo.evaluation", "zoo.demo"):
        importlib.import_module(module)
    original = getattr(sys.modules[module_name], name)
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("zoo") and getattr(module, name, None) is original:
            setattr(module, name, new)


def target_is_source():
    """Translation without a swap renders with the source model instead of the target."""
    from zoo.translation import Renderer

    original = Renderer.render

    def render(self, latents, noise):
        if not self.resolutions:
            return self.source.synthesis(latents, noise=noise)
        return original(self, latents, noise)

    Renderer.render = torch.no_grad()(render)


def feature_swap_noise():
    """feature_swap returns random noise of the right shape."""

    def feature_swap(base, target, latent, resolution, noise="const"):
        return torch.randn(latent.shape[0], 3, target.config.size, target.config.size)

    replace("zoo.swap", "feature_swap", feature_swap)


def feature_swap_noop():
    """feature_swap swaps nothing: the target's own rendering."""

    def feature_swap(base, target, latent, resolution, noise="const"):
        return target.synthesis(latent, noise=noise)

    replace("zoo.swap", "feature_swap", feature_swap)


def weight_swap_in_place():
    """weight_swap edits the target itself (and returns it) instead of a copy."""
    from zoo import swap

    def weight_swap(base, target, resolutions):
        swap.check_compatible(base, target)
        state, base_state = target.state_dict(), base.state_dict()
        with torch.no_grad():
            for key in swap.swapped_keys(target, resolutions):
                state[key].copy_(base_state[key])
        return target

    replace("zoo.swap", "weight_swap", weight_swap)


def sefa_box_10x():
    """The SeFa bounds ten times too wide."""
    from zoo import inversion

    original = inversion.compute_sefa_space

    def compute_sefa_space(generator, samples=10_000, seed=0):
        space = original(generator, samples, seed)
        space.low, space.high = space.low * 10, space.high * 10
        return space

    replace("zoo.inversion", "compute_sefa_space", compute_sefa_space)


def sefa_wrong_layers():
    """SeFa factorises the ToRGB modulations too (a wrong layer set)."""

    def modulation_matrix(generator):
        layers = [generator.conv1, *generator.convs, generator.to_rgb1, *generator.to_rgbs]
        rows = torch.cat([layer.conv.modulation.weight.detach().float() for layer in layers])
        return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)

    replace("zoo.inversion", "modulation_matrix", modulation_matrix)


def appearance_rows_first():
    """The appearance code goes on the first K rows instead of the last K."""

    def with_appearance(content, appearance, layers):
        if layers == 0:
            return content
        if appearance.ndim == 2:
            appearance = appearance[:, None, :].expand(-1, content.shape[1], -1)
        return torch.cat([appearance[:, :layers], content[:, layers:]], dim=1)

    replace("zoo.translation", "with_appearance", with_appearance)


def appearance_untruncated():
    """Random appearance codes are not truncated toward the target's mean."""

    def random_appearance(target, count, options):
        z = torch.randn(count, target.config.style_dim, generator=torch.Generator().manual_seed(options.seed))
        return target.mapping(z)

    replace("zoo.translation", "random_appearance", torch.no_grad()(random_appearance))


def weight_swap_takes_torgb():
    """The weight swap also takes the base's ToRGB layers at the swapped resolutions."""
    from zoo import swap

    original = swap.swapped_keys

    def swapped_keys(generator, resolutions):
        keys = original(generator, resolutions)
        return keys + [key for key in generator.state_dict() if key.startswith("to_rgb1.")]

    replace("zoo.swap", "swapped_keys", swapped_keys)


# name -> (mutation, the test files that should kill it)
MUTATIONS = {
    "target-is-source": (target_is_source, ["test_translation.py", "test_evaluation.py"]),
    "feature-swap-noise": (feature_swap_noise, ["test_swap.py", "test_translation.py"]),
    "feature-swap-noop": (feature_swap_noop, ["test_swap.py", "test_translation.py"]),
    "weight-swap-in-place": (weight_swap_in_place, ["test_swap.py", "test_translation.py"]),
    "sefa-box-10x": (sefa_box_10x, ["test_inversion.py"]),
    "sefa-wrong-layers": (sefa_wrong_layers, ["test_inversion.py"]),
    "appearance-rows-first": (appearance_rows_first, ["test_translation.py"]),
    "appearance-untruncated": (appearance_untruncated, ["test_translation.py"]),
    "weight-swap-takes-torgb": (weight_swap_takes_torgb, ["test_swap.py", "test_translation.py"]),
}

SITECUSTOMIZE = """
import os
if os.environ.get("ZOO_MUTATION"):
    import mutations
    mutations.MUTATIONS[os.environ["ZOO_MUTATION"]][0]()
"""


def run(name: str) -> tuple[bool, float, list[str]]:
    """(killed, seconds, the failing tests)."""
    files = [str(TESTS / file) for file in MUTATIONS[name][1]]
    with tempfile.TemporaryDirectory() as site:
        Path(site, "sitecustomize.py").write_text(SITECUSTOMIZE)
        paths = [site, str(TESTS), str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "ZOO_MUTATION": name, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
        command = [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider", *files]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    failed = [line.split()[1] for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if result.returncode not in (0, 1):  # 1: tests failed; anything else: pytest or the patch broke
        raise RuntimeError(f"mutation {name}: pytest exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result.returncode == 1, time.perf_counter() - started, failed


def main(names: list[str]) -> int:
    if names == ["--list"]:
        for name, (mutation, files) in MUTATIONS.items():
            print(f"{name:26} {mutation.__doc__}  [{', '.join(files)}]")
        return 0
    unknown = set(names) - set(MUTATIONS)
    if unknown:
        print(f"unknown mutation(s) {sorted(unknown)}; see --list", file=sys.stderr)
        return 2
    survivors = []
    print(f"{'mutation':26} {'result':9} {'seconds':>7} {'failed':>6}  failing tests")
    for name in names or MUTATIONS:
        killed, seconds, failing = run(name)
        shown = ", ".join(test.split("::")[-1] for test in failing[:3]) + (", ..." if len(failing) > 3 else "")
        print(f"{name:26} {'killed' if killed else 'SURVIVED':9} {seconds:7.0f} {len(failing):6}  {shown}", flush=True)
        if not killed:
            survivors.append(name)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
