import math

import pytest
import torch

from pix2pix_unet.config import GanLoss
from pix2pix_unet.losses import discriminator_loss, generator_adversarial_loss, l1_loss


def test_vanilla_matches_bce():
    real, fake = torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    # logits 0 -> p = 0.5 -> BCE = log 2 for both terms, halved sum
    assert discriminator_loss(real, fake, GanLoss.VANILLA).item() == pytest.approx(math.log(2))
    assert generator_adversarial_loss(fake, GanLoss.VANILLA).item() == pytest.approx(math.log(2))


def test_lsgan_and_hinge_values():
    real, fake = torch.ones(1, 1, 2, 2), -torch.ones(1, 1, 2, 2)
    assert discriminator_loss(real, torch.zeros_like(fake), GanLoss.LSGAN).item() == 0.0
    assert generator_adversarial_loss(torch.zeros_like(fake), GanLoss.LSGAN).item() == 1.0
    assert discriminator_loss(real, fake, GanLoss.HINGE).item() == 0.0  # both at the margin
    assert discriminator_loss(-real, -fake, GanLoss.HINGE).item() == 4.0
    assert generator_adversarial_loss(fake, GanLoss.HINGE).item() == 1.0


@pytest.mark.parametrize("kind", list(GanLoss))
def test_d_loss_prefers_correct_logits(kind):
    good = discriminator_loss(torch.full((4,), 3.0), torch.full((4,), -3.0), kind)
    bad = discriminator_loss(torch.full((4,), -3.0), torch.full((4,), 3.0), kind)
    assert good < bad


def test_l1():
    assert l1_loss(torch.ones(3), torch.zeros(3)).item() == 1.0


# --------------------------------------------------------------------------- multi-scale, FM, WGAN-GP

import torch.nn.functional as F  # noqa: E402

from pix2pix_unet.config import Norm, PatchGANConfig  # noqa: E402
from pix2pix_unet.losses import feature_matching_loss, gradient_penalty, interpolate  # noqa: E402
from pix2pix_unet.models import Discriminator  # noqa: E402


@pytest.mark.parametrize("kind", list(GanLoss))
def test_gan_losses_average_over_scales(kind):
    reals = [torch.randn(2, 1, 6, 6), torch.randn(2, 1, 3, 3)]
    fakes = [torch.randn(2, 1, 6, 6), torch.randn(2, 1, 3, 3)]
    d_each = [discriminator_loss(r, f, kind) for r, f in zip(reals, fakes)]
    assert discriminator_loss(reals, fakes, kind).item() == pytest.approx(sum(d_each).item() / 2)
    g_each = [generator_adversarial_loss(f, kind) for f in fakes]
    assert generator_adversarial_loss(fakes, kind).item() == pytest.approx(sum(g_each).item() / 2)


def test_wasserstein_terms():
    real, fake = torch.full((2, 1, 3, 3), 2.0), torch.full((2, 1, 3, 3), -1.0)
    assert discriminator_loss(real, fake, GanLoss.WGAN_GP).item() == -3.0  # E[D(fake)] - E[D(real)]
    assert generator_adversarial_loss(fake, GanLoss.WGAN_GP).item() == 1.0  # -E[D(fake)]


def _features(seed: int) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 8, 4, 4, generator=g), torch.randn(2, 1, 3, 3,
                                                                                                     generator=g)]
            for _ in range(2)]


def test_feature_matching_is_zero_for_identical_inputs():
    d = Discriminator(3, 3, PatchGANConfig(base_channels=4, n_layers=2, num_scales=2))
    a, b = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    assert feature_matching_loss(d.features(a, b), d.features(a, b)).item() == 0.0
    assert feature_matching_loss(d.features(a, b), d.features(a, -b)).item() > 0.0


def test_feature_matching_value_skips_logits_and_trains_only_the_fake_side():
    real = _features(0)
    fake = [[f.clone().requires_grad_() for f in scale] for scale in _features(1)]
    real[0][-1] += 100.0  # the logits do not count
    expected = torch.stack([torch.stack([F.l1_loss(f, r) for r, f in zip(rs[:-1], fs[:-1])]).mean()
                            for rs, fs in zip(real, fake)]).mean()
    real = [[r.requires_grad_() for r in scale] for scale in real]
    loss = feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert fake[0][0].grad is not None and real[0][0].grad is None
    assert fake[0][-1].grad is None  # logits unused


def test_interpolate_mixes_each_sample_on_one_line():
    real, fake = torch.zeros(4, 3, 5, 5), torch.ones(4, 3, 5, 5)
    mix = interpolate(real, fake, generator=torch.Generator().manual_seed(0))
    per_sample = mix.flatten(1)
    assert torch.all(per_sample == per_sample[:, :1]) and per_sample.min() >= 0 and per_sample.max() <= 1
    assert per_sample[:, 0].unique().numel() == 4


def test_gradient_penalty_exact_for_a_linear_critic():
    # D = 1x1 conv with weights a: the critic (mean over h*w patches) has gradient a / (h*w) at every pixel,
    # so ||grad|| = |a| / sqrt(h*w) for every sample.
    a = torch.tensor([3.0, 4.0])  # |a| = 5
    x = torch.randn(3, 2, 5, 5, requires_grad=True)
    logits = F.conv2d(x, a.view(1, 2, 1, 1))
    assert gradient_penalty(logits, x).item() == pytest.approx((5.0 / 5.0 - 1.0) ** 2, abs=1e-6)  # norm 1: zero
    assert gradient_penalty([logits * 3, logits * 3], x).item() == pytest.approx((3.0 - 1.0) ** 2, rel=1e-5)


def test_gradient_penalty_is_nonzero_and_trains_the_discriminator():
    d = Discriminator(3, 3, PatchGANConfig(base_channels=4, n_layers=2, norm=Norm.INSTANCE, num_scales=2))
    cond = torch.randn(2, 3, 32, 32)
    x = interpolate(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)).requires_grad_()
    gp = gradient_penalty(d(cond, x), x)
    assert gp.item() > 0 and gp.requires_grad
    gp.backward()
    # every weight gets a gradient (biases may not: the gradient w.r.t. the input does not depend on them)
    weights = {n: p.grad for n, p in d.named_parameters() if n.endswith("weight")}
    assert all(g is not None and g.abs().sum() > 0 and torch.isfinite(g).all() for g in weights.values()), weights


def test_gradient_penalty_gradcheck():
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)

    def penalty(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        xi = x.clone().requires_grad_()
        return gradient_penalty(F.conv2d(F.softplus(F.conv2d(xi, w)), v), xi)

    assert torch.autograd.gradcheck(penalty, (w, v))


def test_gradient_penalty_needs_a_graph_input():
    with pytest.raises(ValueError, match="require grad"):
        gradient_penalty(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
