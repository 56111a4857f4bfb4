import pytest
import torch

from pix2pix_unet.config import DiscriminatorKind, PatchGANConfig
from pix2pix_unet.models import Discriminator, count_parameters


def test_70x70_patchgan_shape_and_size():
    d = Discriminator(3, 3, PatchGANConfig())
    assert d(torch.randn(1, 3, 256, 256), torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert count_parameters(d) == 2_768_705  # the reference "basic" D with 6 input channels


def test_receptive_field_is_70():
    d = Discriminator(1, 1, PatchGANConfig(base_channels=4)).eval()
    cond = torch.zeros(1, 1, 128, 128)
    img = torch.zeros(1, 1, 128, 128, requires_grad=True)
    logits = d(cond, img)
    logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2].backward()
    rows = img.grad[0, 0].abs().sum(1).nonzero()
    cols = img.grad[0, 0].abs().sum(0).nonzero()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_pixel_gan_keeps_resolution():
    d = Discriminator(2, 3, PatchGANConfig(kind=DiscriminatorKind.PIXEL, base_channels=8))
    assert d(torch.randn(2, 2, 17, 9), torch.randn(2, 3, 17, 9)).shape == (2, 1, 17, 9)


@pytest.mark.parametrize("kind", list(DiscriminatorKind))
def test_gradients_reach_every_parameter(kind):
    d = Discriminator(3, 3, PatchGANConfig(kind=kind, base_channels=8, n_layers=2))
    d(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())


def test_features_end_with_logits():
    d = Discriminator(3, 3, PatchGANConfig(base_channels=8, n_layers=2))
    a, b = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
    feats = d.features(a, b)
    assert len(feats) == 4 and torch.equal(feats[-1], d(a, b))
