import pytest
import torch

from pix2pix_unet.config import DiscriminatorKind, PatchGANConfig
from pix2pix_unet.models import Discriminator, count_parameters


def test_70x70_patchgan_shape_and_size():
    d = Discriminator(3, 3, PatchGANConfig())
    (logits,) = d(torch.randn(1, 3, 256, 256), torch.randn(1, 3, 256, 256))  # one scale
    assert logits.shape == (1, 1, 30, 30)
    assert count_parameters(d) == 2_768_705  # the reference "basic" D with 6 input channels


def test_receptive_field_is_70():
    d = Discriminator(1, 1, PatchGANConfig(base_channels=4)).eval()
    cond = torch.zeros(1, 1, 128, 128)
    img = torch.zeros(1, 1, 128, 128, requires_grad=True)
    (logits,) = d(cond, img)
    logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2].backward()
    rows = img.grad[0, 0].abs().sum(1).nonzero()
    cols = img.grad[0, 0].abs().sum(0).nonzero()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_pixel_gan_keeps_resolution():
    d = Discriminator(2, 3, PatchGANConfig(kind=DiscriminatorKind.PIXEL, base_channels=8))
    assert d(torch.randn(2, 2, 17, 9), torch.randn(2, 3, 17, 9))[0].shape == (2, 1, 17, 9)


@pytest.mark.parametrize("kind", list(DiscriminatorKind))
def test_gradients_reach_every_parameter(kind):
    d = Discriminator(3, 3, PatchGANConfig(kind=kind, base_channels=8, n_layers=2))
    d(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32))[0].mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())


def test_features_end_with_logits():
    d = Discriminator(3, 3, PatchGANConfig(base_channels=8, n_layers=2))
    a, b = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
    (feats,) = d.features(a, b)  # one scale
    assert len(feats) == 4 and torch.equal(feats[-1], d(a, b)[0])


def test_multiscale_returns_logits_and_features_per_scale():
    d = Discriminator(3, 3, PatchGANConfig(base_channels=8, n_layers=2, num_scales=3))
    a, b = torch.randn(2, 3, 50, 66), torch.randn(2, 3, 50, 66)
    logits = d(a, b)
    # scales see 50x66, 25x33 and 13x17 px (3x3 average pool, stride 2, padding 1)
    assert [t.shape for t in logits] == [(2, 1, 10, 14), (2, 1, 4, 6), (2, 1, 1, 2)]
    feats = d.features(a, b)
    assert len(feats) == 3 and all(len(f) == 4 for f in feats)
    assert all(torch.equal(f[-1], t) for f, t in zip(feats, logits))
    assert count_parameters(d) == 3 * count_parameters(Discriminator(3, 3, PatchGANConfig(base_channels=8, n_layers=2)))


def test_multiscale_scales_see_pooled_inputs():
    d = Discriminator(1, 1, PatchGANConfig(base_channels=4, n_layers=1, num_scales=2)).eval()
    img = torch.zeros(1, 1, 96, 96, requires_grad=True)
    coarse = d(torch.zeros(1, 1, 96, 96), img)[1]
    coarse[0, 0, coarse.shape[2] // 2, coarse.shape[3] // 2].backward()
    rows = img.grad[0, 0].abs().sum(1).nonzero()
    # n_layers=1 sees 16 px; on the 2x pooled input (3x3 windows, stride 2) that is (16 - 1) * 2 + 3 px
    assert rows.max() - rows.min() + 1 == 33


@pytest.mark.parametrize("kind", list(DiscriminatorKind))
def test_multiscale_spectral_gradients_reach_every_parameter(kind):
    cfg = PatchGANConfig(kind=kind, base_channels=8, n_layers=2, num_scales=2, spectral_norm=True)
    d = Discriminator(3, 3, cfg)
    assert all(hasattr(m, "parametrizations") for m in d.modules() if isinstance(m, torch.nn.Conv2d))
    sum(t.mean() for t in d(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32))).backward()
    missing = [n for n, p in d.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_input_too_small_for_a_scale_is_named():
    d = Discriminator(3, 3, PatchGANConfig(base_channels=4, num_scales=3))
    with pytest.raises(ValueError, match=r"scale 2 sees 16x16 px .*64x64 input.*at least 24 px"):
        d(torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64))
