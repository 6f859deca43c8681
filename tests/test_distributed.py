"""Two processes with DistributedDataParallel on gloo (CPU) against one process with the same global batch.

The test launches `python -m torch.distributed.run --nproc_per_node=2 tests/test_distributed.py ...`: this file is
also the worker script (see `worker` below).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
MODEL = dict(size=16, style_dim=16, n_mlp=2, channels={4: 16, 8: 12, 16: 8})
# Every part of a step: R1 and path length at steps 0 and 2; augmentation from step 1 (r_t >= -1 is always above
# the target, so p rises 0.2 a step); style mixing; mirroring. Batch 8 gives each of the 2 ranks 4 images, one
# minibatch-stddev group, as in one process. float32: bfloat16's rounding ('auto' on CPUs that compute it natively) is
# far above what the comparison with one process allows.
RECIPE = dict(iters=4, batch=8, d_reg_every=2, g_reg_every=2, augment="ada", ada_target=-2.0, ada_interval=1,
              ada_kimg=0.04, seed=5, snapshot_every=100, sample_every=100, log_every=1,
              precision="float32")  # fmt: skip
RUNS = {
    "scratch": dict(),
    "fine-tune": dict(freeze_fc=True, freeze_d=1),
}


def make_data(root: Path) -> Path:
    rng = np.random.RandomState(0)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(10):
        Image.fromarray(rng.randint(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / f"{index}.png")
    return root


def run_all(data: Path, run_root: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Both runs (from scratch; fine-tuning with FreezeFC and FreezeD); every final weight, by run."""
    from zoo.model import ModelConfig
    from zoo.training import TrainConfig, load_base, train

    states = {}
    for name, overrides in RUNS.items():
        config = TrainConfig(**RECIPE, **overrides)
        source = dict(base=load_base("base")) if name == "fine-tune" else dict(model_config=ModelConfig(**MODEL))
        result = train(config, data, run_root / name, device="cpu", **source)
        states[name] = {
            **{f"g_ema.{key}": value for key, value in result.generator.state_dict().items()},
            **{f"d.{key}": value for key, value in result.discriminator.state_dict().items()},
            "augment_p": torch.tensor(result.augment["p"]),
        }
    return states


def install_base():
    from zoo.model import Discriminator, Generator, ModelConfig
    from zoo.registry import install_model

    torch.manual_seed(1)
    config = ModelConfig(**MODEL)
    install_model("base", Generator(config), family="base", lineage={}, discriminator=Discriminator(config))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_gloo_processes_match_one_process(tmp_path, zoo_home):
    data = make_data(tmp_path / "data")
    install_base()
    environment = {**os.environ, "PYTHONPATH": str(REPO), "ZOO_HOME": str(zoo_home), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
        f"--master_port={free_port()}", __file__, str(data), str(tmp_path / "runs-ddp"), str(tmp_path / "out"),
    ]  # fmt: skip
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-4000:]
    ranks = [torch.load(tmp_path / "out" / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    assert [states["agreed"] for states in ranks] == [0, 0]  # a per-process choice (e.g. precision auto) is rank 0's

    torch.set_num_threads(1)  # as each worker
    single = run_all(data, tmp_path / "runs-single")

    for name in RUNS:
        assert ranks[0][name].keys() == single[name].keys()
        for key, value in single[name].items():
            # Ranks hold bit-identical weights: DDP gives every rank the same averaged gradient.
            assert torch.equal(ranks[0][name][key], ranks[1][name][key]), (name, key)
            # One process sums the batch's gradients in another order than two half-batch sums averaged by DDP,
            # so the runs agree to rounding, not bit for bit. Adam divides each gradient by its running RMS, which
            # turns a rounding difference in a near-zero gradient into a step of up to ~1e-4 over these 4 steps; a
            # real DDP fault (a gradient not averaged, a wrong batch split) moves weights by the lr (2e-3) per step.
            torch.testing.assert_close(ranks[0][name][key], value, rtol=0, atol=1e-4, msg=lambda default: f"{name} {key}: {default}")
        assert single[name]["augment_p"] > 0  # the augmented steps were exercised
    # Only rank 0 writes: one metrics line per step, not two.
    lines = (tmp_path / "runs-ddp" / "scratch" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]


def worker(data: str, run_root: str, out: str) -> None:
    import torch.distributed as dist

    from zoo.training.distributed import rank_zero_choice

    dist.init_process_group("gloo")  # both runs in one process group; train() uses it as it finds it
    states = run_all(Path(data), Path(run_root))
    states["agreed"] = rank_zero_choice(dist.get_rank())
    Path(out).mkdir(exist_ok=True)
    torch.save(states, Path(out) / f"rank{dist.get_rank()}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    worker(*sys.argv[1:])
