"""SPADE: norm, residual blocks and the generator; shapes at odd sizes, gradients, the label map at every block."""

import pytest
import torch

from pix2pix_unet.config import GENERATOR_PRESETS, Architecture, ConfigError, Norm, UNetConfig, from_dict
from pix2pix_unet.models import Generator, SPADEGenerator, build_generator
from pix2pix_unet.models.spade import SPADE, SPADEResBlock

K = 5


def tiny(**kw) -> UNetConfig:
    return UNetConfig(architecture=Architecture.SPADE, in_channels=K, depth=3, base_channels=8, max_channels=16,
                      spade_hidden=8, dropout=0.0, **kw)


def one_hot_map(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(K, (b, h, w), generator=g)
    return torch.nn.functional.one_hot(ids, K).permute(0, 3, 1, 2).float()


def test_registered_and_built_from_the_presets():
    assert type(build_generator(tiny())) is SPADEGenerator
    for name in ("spade", "spade-256"):
        assert GENERATOR_PRESETS[name].architecture is Architecture.SPADE
    cfg = from_dict(UNetConfig, {"preset": "spade", "in_channels": K})
    assert isinstance(build_generator(cfg), SPADEGenerator)


@pytest.mark.parametrize("norm", [Norm.BATCH, Norm.INSTANCE, Norm.NONE])
@pytest.mark.parametrize("size", [(33, 47), (9, 8), (17, 5)])
def test_shapes_at_odd_sizes(size, norm):
    net = SPADEGenerator(tiny(norm=norm, noise_channels=3))
    out = net(one_hot_map(2, *size))
    assert out.shape == (2, 3, *size)
    assert out.abs().max() <= 1


def test_spade_norm_and_block_shapes():
    norm = SPADE(6, K, 8, Norm.INSTANCE)
    assert norm(torch.randn(2, 6, 9, 11), one_hot_map(2, 36, 44)).shape == (2, 6, 9, 11)
    block = SPADEResBlock(16, 8, K, tiny(spectral_norm=True))
    assert block.learned_shortcut and block(torch.randn(2, 16, 7, 5), one_hot_map(2, 14, 10)).shape == (2, 8, 7, 5)


def test_gradients_reach_every_parameter():
    net = SPADEGenerator(tiny(noise_channels=2, spectral_norm=True))
    net(one_hot_map(2, 21, 19)).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_the_label_map_reaches_each_block():
    """Every SPADE norm sees the label map at its block's resolution, and the label map moves every block's output."""
    net = SPADEGenerator(tiny()).eval()
    seen: dict[str, tuple] = {}

    def record(name: str):
        def hook(module, args, out) -> None:
            seen[name] = (args[0].shape, args[1].shape)
        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in net.named_modules() if isinstance(m, SPADE)]
    x = one_hot_map(1, 32, 32).requires_grad_(True)
    outputs = []
    block_hooks = [b.register_forward_hook(lambda mod, args, out: outputs.append(out) and None) for b in net.blocks]
    net(x)
    for h in hooks + block_hooks:
        h.remove()
    assert len(seen) == sum(isinstance(m, SPADE) for m in net.modules()) >= 2 * len(net.blocks)
    assert all(label[1] == K and label[0] == 1 for _, label in seen.values())
    assert sorted({tuple(feat[-2:]) for feat, _ in seen.values()}) == [(4, 4), (8, 8), (16, 16), (32, 32)]
    # each block's output depends on the label map through that block's own SPADE norms
    for block, out in zip(net.blocks, outputs):
        grads = torch.autograd.grad(out.sum(), [p for n, p in block.named_parameters() if "shared" in n],
                                    retain_graph=True)
        assert all(g.abs().sum() > 0 for g in grads)
    changed = one_hot_map(1, 32, 32, seed=1)
    assert not torch.allclose(net(x.detach()), net(changed))


def test_noise_gives_different_images_of_one_layout_and_can_be_fixed():
    net = SPADEGenerator(tiny(noise_channels=4)).eval()
    x = one_hot_map(1, 16, 16)
    assert not torch.allclose(net(x), net(x))
    z = torch.randn(1, 4)
    assert torch.equal(net(x, z), net(x, z))
    with pytest.raises(ValueError, match=r"noise must be \(1, 4\)"):
        net(x, torch.randn(1, 3))


def test_bad_inputs_are_named():
    net = SPADEGenerator(tiny())
    with pytest.raises(ValueError, match=r"expects \(B, 5, H, W\) one-hot label maps, got shape \(1, 3, 8, 8\)"):
        net(torch.randn(1, 3, 8, 8))
    with pytest.raises(ConfigError, match="generator.norm='layer' cannot be used by SPADE"):
        SPADEGenerator(tiny(norm=Norm.LAYER))
    with pytest.raises(ConfigError, match="noise_channels=-1"):
        SPADEGenerator(tiny(noise_channels=-1))


def test_save_and_load(tmp_path):
    net = SPADEGenerator(tiny()).eval()
    net.save_pretrained(tmp_path / "g")
    loaded = Generator.from_pretrained(tmp_path / "g")
    x = one_hot_map(2, 13, 27)
    assert isinstance(loaded, SPADEGenerator) and torch.equal(loaded(x), net(x))
