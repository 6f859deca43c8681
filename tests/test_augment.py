import pytest
import torch

from zoo import augment
from zoo.augment import AugmentController


def images(batch=6, size=16):
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_p_zero_is_identity_and_p_one_changes_every_image():
    x = images()
    assert torch.allclose(augment.augment(x, 0.0, torch.Generator().manual_seed(1)), x, atol=1e-6)  # up to rounding
    out = augment.augment(x, 1.0, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    assert all(not torch.equal(out[i], x[i]) for i in range(len(x)))


def test_deterministic_given_the_generator():
    x = images()
    first = augment.augment(x, 0.5, torch.Generator().manual_seed(7))
    assert torch.equal(first, augment.augment(x, 0.5, torch.Generator().manual_seed(7)))
    assert not torch.equal(first, augment.augment(x, 0.5, torch.Generator().manual_seed(8)))


def test_differentiable_with_respect_to_the_images():
    x = images().requires_grad_(True)
    out = augment.augment(x, 1.0, torch.Generator().manual_seed(2))
    (gradient,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    assert gradient.abs().sum() > 0 and torch.isfinite(gradient).all()
    (second,) = torch.autograd.grad(gradient.sum(), x)  # R1 differentiates through the augmentation twice
    assert torch.isfinite(second).all()
    assert torch.autograd.gradcheck(
        lambda t: augment.augment(t, 1.0, torch.Generator().manual_seed(3)), images(2, 8).double().requires_grad_()
    )


def test_translation_and_cutout_geometry():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(1, 3, 1, 1)
    shifted = augment.translate(x, torch.tensor([[0.25, 0.0]]))  # one pixel right, zero fill
    assert shifted[0, 0, 0].tolist() == [0.0, 0.0, 1.0, 2.0]
    shifted = augment.translate(x, torch.tensor([[0.0, -0.25]]))  # one pixel up
    assert shifted[0, 0, :, 0].tolist() == [4.0, 8.0, 12.0, 0.0]
    holed = augment.cutout(torch.ones(2, 3, 8, 8), torch.tensor([[0.5, 0.5], [0.5, 0.5]]), torch.tensor([True, False]))
    assert holed[0, 0].sum() == 64 - 16 and holed[0, 0, 2:6, 2:6].sum() == 0  # a 4x4 hole in the middle
    assert holed[1].sum() == 3 * 64  # not chosen: untouched


def test_each_op_is_applied_with_probability_p():
    params = augment.draw_params(20_000, 0.3, torch.Generator().manual_seed(0))
    assert params["cutout"].float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert (params["contrast"] != 1).float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert params["xflip"].float().mean().item() == pytest.approx(0.15, abs=0.01)  # chosen, then a fair coin


def test_controller_moves_p_toward_the_target():
    controller = AugmentController(adaptive=True, target=0.6, interval=2, speed_images=80, batch=8)  # 0.2 per adjust
    overconfident = torch.ones(8, 1)
    controller.observe(overconfident)
    assert controller.p == 0.0  # adjusts every `interval` observations
    controller.observe(overconfident)
    assert controller.p == pytest.approx(0.2) and controller.last_rt == 1.0
    for _ in range(20):
        controller.observe(overconfident)
    assert controller.p == 1.0  # clamped
    balanced = torch.tensor([[1.0], [-1.0]] * 4)  # r_t = 0 < 0.6: p falls
    for _ in range(4):
        controller.observe(balanced)
    assert controller.p == pytest.approx(0.6) and controller.last_rt == 0.0


def test_controller_state_round_trip_mid_interval():
    controller = AugmentController(adaptive=True, interval=4, speed_images=64, batch=8)
    for sign in (1.0, 1.0, 1.0, 1.0, -1.0):  # r_t = 1 over the first interval, then one step pending
        controller.observe(torch.full((8, 1), sign))
    state = controller.state_dict()
    assert state == {"p": 0.5, "steps_observed": 5, "sign_sum_and_count": [-8.0, 8.0], "last_rt": 1.0}
    restored = AugmentController(adaptive=True, interval=4, speed_images=64, batch=8)
    restored.load_state_dict(state)
    for each in (controller, restored):
        for _ in range(3):
            each.observe(torch.ones(8, 1))
    assert restored.state_dict() == controller.state_dict()
    assert restored.p == 0.0 and restored.last_rt == 0.5  # the pending -1 step counted: r_t = (-8 + 24) / 32


def test_fixed_controller_ignores_observations():
    controller = AugmentController(p=1.0)
    controller.observe(torch.ones(4, 1))
    assert controller.p == 1.0 and controller.state_dict()["steps_observed"] == 0
