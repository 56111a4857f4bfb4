"""The transformer bottleneck (``bottleneck=transformer``, preset ``trans-unet``): shapes, positions at any size,
global mixing, gradients, bad widths, save/reload and ONNX parity."""

from __future__ import annotations

import pytest
import torch

from pix2pix_unet.config import ConfigError, PositionEmbedding, TransformerConfig, UNetConfig, from_dict
from pix2pix_unet.models import Generator, UNet, build_generator
from pix2pix_unet.models.transformer import PositionEmbedding2d, TransformerBottleneck, sinusoidal_embedding

# the trans-unet preset at test width: 3 levels, 8 -> 32 channels, 2 blocks of 4 heads on a 4x4 lattice
SMALL = {"preset": "trans-unet", "depth": 3, "base_channels": 8, "max_channels": 32,
         "transformer": {"depth": 2, "heads": 4, "grid": 4}}


def small(**transformer) -> UNetConfig:
    return from_dict(UNetConfig, {**SMALL, "transformer": {**SMALL["transformer"], **transformer}})


@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 3, 16, 16), (1, 3, 8, 75)])
def test_trans_unet_keeps_any_input_size(position, shape):
    net = build_generator(small(position=position))
    assert isinstance(net.bottleneck, TransformerBottleneck) and len(net.bottleneck.blocks) == 2
    assert net(torch.randn(shape)).shape == shape


def test_the_preset_is_transunet_shaped():
    cfg = from_dict(UNetConfig, {"preset": "trans-unet"})
    assert cfg.transformer == TransformerConfig(depth=4, heads=8) and cfg.depth == 4
    net = UNet(cfg)
    assert net.bottleneck.position.table.shape == (1, 256, 16, 16)  # 256-px images: 16x16 tokens, no resizing


def test_learned_positions_are_the_table_at_its_own_grid_and_resampled_elsewhere():
    embed = PositionEmbedding2d(8, TransformerConfig(grid=4))
    x = torch.zeros(1)
    assert torch.equal(embed(4, 4, x), embed.table)
    wide = embed(4, 8, x)  # twice the columns: token j sits at lattice column (j + 0.5) / 2 - 0.5
    table = embed.table.detach()
    assert wide.shape == (1, 8, 4, 8)
    assert torch.allclose(wide[..., 1], 0.75 * table[..., 0] + 0.25 * table[..., 1])
    assert torch.allclose(wide[..., 2], 0.25 * table[..., 0] + 0.75 * table[..., 1])
    assert torch.allclose(wide[..., 0], table[..., 0])  # the border clamps to the table's edge


def test_sinusoidal_positions_measure_in_grid_units():
    at_grid = sinusoidal_embedding(16, 4, 4, grid=4, device=torch.device("cpu"))
    # row i, column j at lattice position (i, j): channel 0 is sin(y), channel 4 cos(y), channel 8 sin(x)
    ys = torch.arange(4.0)
    assert torch.allclose(at_grid[0, 0, :, 0], ys.sin()) and torch.allclose(at_grid[0, 4, :, 0], ys.cos())
    assert torch.allclose(at_grid[0, 8, 0, :], ys.sin())
    # the same image region at twice the tokens: cell centres between the lattice points
    double = sinusoidal_embedding(16, 8, 8, grid=4, device=torch.device("cpu"))
    assert torch.allclose(double[0, 0, :, 0], ((torch.arange(8.0) + 0.5) / 2 - 0.5).sin())
    tokens = double.flatten(2)[0].T
    assert torch.cdist(tokens, tokens).add(torch.eye(64) * 1e3).min() > 1e-3  # every token is told apart


def test_attention_mixes_the_whole_image():
    """A pixel in one corner changes the output in the other; without the transformer it does not."""
    base = {"depth": 2, "base_channels": 4, "max_channels": 8, "conv_unit": "double", "down": "maxpool",
            "up": "bilinear", "dropout": 0.0, "transformer": {"depth": 1, "heads": 2, "grid": 4}}
    for bottleneck, reaches in [("transformer", True), ("none", False)]:
        torch.manual_seed(0)
        net = UNet(from_dict(UNetConfig, {**base, "bottleneck": bottleneck})).eval()
        x = torch.randn(1, 3, 64, 64, requires_grad=True)
        net(x)[0, :, 0, 0].sum().backward()
        assert bool(x.grad[0, :, -1, -1].abs().sum() > 0) is reaches, bottleneck


def test_gradients_reach_every_parameter():
    net = build_generator(small(dim=16))  # 1x1 projections in and out
    net(torch.randn(2, 3, 24, 40)).square().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("override, message", [
    ({"heads": 3}, r"generator.transformer.heads=3 must divide the token width the deepest level's channels=32"),
    ({"heads": 3, "dim": 18, "position": "sinusoidal"}, r"divisible by 4, got generator.transformer.dim=18"),
    ({"dim": 10, "heads": 4}, r"heads=4 must divide the token width generator.transformer.dim=10"),
    ({"grid": 0}, r"generator.transformer.grid=0 must be positive"),
])
def test_bad_widths_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        UNet(small(**override))


def test_save_and_reload_give_the_same_output(tmp_path):
    torch.manual_seed(0)
    net = build_generator(small(position=PositionEmbedding.SINUSOIDAL.value)).eval()
    net.save_pretrained(tmp_path / "g")
    loaded = Generator.from_pretrained(tmp_path / "g")
    assert loaded.config.transformer.position is PositionEmbedding.SINUSOIDAL
    x = torch.randn(2, 3, 29, 41)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


@pytest.mark.slow
def test_onnx_export_matches_pytorch(tmp_path):
    pytest.importorskip("onnxruntime")
    from pix2pix_unet.export import export_onnx, onnx_max_difference
    from pix2pix_unet.tasks import generator_task

    torch.manual_seed(0)
    net = build_generator(small()).eval()  # learned positions: the table is resized in the graph
    path = export_onnx(net, generator_task(net), tmp_path / "trans.onnx")
    assert onnx_max_difference(net, path) < 1e-4  # 2 images of 23 x 17 px, not the traced size
    assert onnx_max_difference(net, path, torch.rand(1, 3, 64, 40) * 2 - 1) < 1e-4
