"""Unpaired translation's losses: the image pool's semantics and resume, the cycle loss by hand, PatchNCE."""

from __future__ import annotations

import math

import pytest
import torch

from pix2pix_unet.losses.unpaired import ImagePool, cycle_loss, identity_loss, multilayer_nce_loss, patch_nce_loss
from pix2pix_unet.models.nce import gather_patches, sample_locations


def images(n: int, start: float) -> torch.Tensor:
    """``n`` constant 1x2x2 images of values start, start + 1, ... (each is its own id)."""
    return torch.arange(start, start + n).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()


def ids(batch: torch.Tensor) -> list[int]:
    return [int(x) for x in batch[:, 0, 0, 0]]


def test_the_pool_returns_its_inputs_until_full_then_mixes_in_history_half_the_time():
    pool = ImagePool(size=4, seed=0)
    assert ids(pool.query(images(4, 0))) == [0, 1, 2, 3]  # filling: the inputs come back
    returned = [i for step in range(50) for i in ids(pool.query(images(2, 100 + 2 * step)))]
    old = [i for i, new in zip(returned, range(100, 200)) if i != new]
    assert 25 < len(old) < 75  # about half of 100 came from the pool
    assert all(i <= 100 + k for k, i in enumerate(returned))  # never an image from the future
    assert len(pool.images) == 4
    assert ids(ImagePool(size=0).query(images(3, 7))) == [7, 8, 9]  # no pool: the inputs


def test_a_restored_pool_continues_exactly():
    pool = ImagePool(size=3, seed=5)
    for step in range(4):
        pool.query(images(2, 10 * step))
    state = pool.state_dict()
    expected = [ids(pool.query(images(2, 100 + 10 * k))) for k in range(5)]
    restored = ImagePool(size=3, seed=999)
    restored.load_state_dict(state)
    assert [ids(restored.query(images(2, 100 + 10 * k))) for k in range(5)] == expected


def test_cycle_and_identity_losses_by_hand():
    real = torch.tensor([[[[0.0, 1.0], [-1.0, 0.5]]]])
    back = torch.tensor([[[[0.5, 1.0], [-1.0, -0.5]]]])
    assert cycle_loss(back, real).item() == pytest.approx((0.5 + 0 + 0 + 1.0) / 4)
    assert identity_loss(real, real).item() == 0.0


def test_patch_nce_is_lowest_for_identical_features_and_matches_its_formula():
    torch.manual_seed(0)
    key = torch.randn(2, 16, 8)
    same = patch_nce_loss(key.clone(), key)
    shuffled = patch_nce_loss(key[:, torch.randperm(16)], key)
    assert same < shuffled and same < patch_nce_loss(torch.randn(2, 16, 8), key)
    # two orthogonal unit keys, queries equal to them: each row's softmax is (e^{1/t}, e^0)
    k = torch.eye(2).unsqueeze(0)
    tau = 0.5
    assert patch_nce_loss(k.clone(), k, tau).item() == pytest.approx(math.log(1 + math.exp(-1 / tau)), rel=1e-5)


def test_patch_nce_sends_no_gradient_to_the_keys():
    query, key = torch.randn(1, 4, 3, requires_grad=True), torch.randn(1, 4, 3, requires_grad=True)
    patch_nce_loss(query, key).backward()
    assert query.grad is not None and key.grad is None


def test_locations_are_distinct_and_shared_between_query_and_key():
    feature = torch.arange(2 * 3 * 4 * 5, dtype=torch.float).view(2, 3, 4, 5)
    where = sample_locations(feature, 7, torch.Generator().manual_seed(1))
    assert len(set(where.tolist())) == 7
    patches = gather_patches(feature, where)
    assert patches.shape == (2, 7, 3)
    flat = int(where[0])
    assert torch.equal(patches[1, 0], feature[1, :, flat // 5, flat % 5])
    assert torch.equal(sample_locations(feature, 100), torch.arange(20))  # fewer locations than asked: all


def test_multilayer_nce_trains_the_encoder_and_the_projector_through_the_output_only():
    from pix2pix_unet.config import ConvUnit, UNetConfig
    from pix2pix_unet.models import UNet
    from pix2pix_unet.models.nce import PatchProjector

    torch.manual_seed(0)
    net = UNet(UNetConfig(depth=2, base_channels=8, max_channels=16, conv_unit=ConvUnit.DOUBLE))
    layers = [0, 1, 2, 3]
    widths = [f.shape[1] for f in net.encoder_features(torch.zeros(1, 3, 16, 16))]
    projector = PatchProjector([widths[i] for i in layers], dim=32)
    source = torch.randn(2, 3, 16, 16)
    output = net(source)
    def nce(out):
        pairs = projector.pairs(net.encoder_features(source), net.encoder_features(out), layers, 20,
                                torch.Generator().manual_seed(0))
        return multilayer_nce_loss(pairs)

    loss = nce(output)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in projector.parameters())
    assert net.stem[0].weight.grad.abs().sum() > 0  # the encoder learns through the output's features
    # the output equal to its source: each query patch meets its own key, the lowest loss on these features
    assert nce(source) < nce(source.flip(-1))
