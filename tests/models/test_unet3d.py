"""The 3D UNet (dims=3): the same blocks built in 3D, anisotropic kernels and pooling from the voxel spacing
(nnU-Net's rule), odd sizes, gradients, the 3D PatchGAN, and the errors for what is not built in 3D."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pix2pix_unet.config import ConfigError, PatchGANConfig, UNetConfig, from_dict
from pix2pix_unet.models import Discriminator, build_generator

TINY3D = dict(depth=3, base_channels=4, max_channels=16, dims=3)

VARIANTS = [
    {},  # pix2pix: strided convs, transposed convs, no conv unit
    {"conv_unit": "double", "down": "maxpool", "up": "bilinear"},  # Çiçek et al.'s 3D U-Net
    {"conv_unit": "residual", "skip": "attention", "bottleneck": "aspp"},
    {"conv_unit": "separable", "down": "avgpool", "up": "nearest", "norm": "instance"},
    {"conv_unit": "dilated", "norm": "group", "norm_groups": 2},
    {"conv_unit": "naf", "top_skip": False, "norm": "layer"},
]


def build(**keys) -> nn.Module:
    return build_generator(from_dict(UNetConfig, {**TINY3D, **keys}))


@pytest.mark.parametrize("keys", VARIANTS, ids=lambda k: "-".join(f"{v}" for v in k.values()) or "pix2pix")
@pytest.mark.parametrize("spacing", [None, [2.0, 0.5, 0.5]], ids=["isotropic", "anisotropic"])
def test_every_3d_variant_keeps_odd_shapes_and_trains_every_parameter(keys, spacing):
    torch.manual_seed(0)
    net = build(**keys, spacing=spacing)
    for name, p in net.named_parameters():
        if name.endswith(("beta", "gamma")):  # NAFNet's blocks start as the identity, where nothing inside learns
            p.data.fill_(0.1)
    x = torch.randn(2, 3, 7, 13, 18)  # no axis a multiple of the factors
    y = net(x)
    assert y.shape == (2, 3, 7, 13, 18)
    y.square().mean().backward()
    untrained = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not untrained


def test_the_spacing_rule_pools_a_coarse_axis_only_once_the_others_have_caught_up():
    # 5 x 1 x 1 um: z stays at stride 1 (and kernel 1) while its spacing is over 2x the finest: 5 > 2 at the
    # first level (the others go to 2), 5 > 4 at the second (they go to 4), 5 <= 8 at the third
    cfg = UNetConfig(depth=4, dims=3, spacing=[5.0, 1.0, 1.0])
    assert cfg.strides == [(1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert cfg.kernels == [(1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3)]
    assert cfg.axis_factors == (4, 16, 16)
    # isotropic voxels, and 2D, halve every axis at every level
    assert UNetConfig(depth=3, dims=3).strides == [(2, 2, 2)] * 3
    assert UNetConfig(depth=3).strides == [(2, 2)] * 3 and UNetConfig(depth=3).axis_factors == (8, 8)
    # y coarser than x (a line-scan): the rule works per axis, not only on z
    assert UNetConfig(depth=2, dims=3, spacing=[1.0, 3.0, 1.0]).strides == [(2, 1, 2), (2, 2, 2)]


def test_the_built_layers_follow_the_plan():
    net = build(conv_unit="double", down="maxpool", spacing=[2.0, 0.5, 0.5])
    stem_conv = net.stem[0]
    assert isinstance(stem_conv, nn.Conv3d) and stem_conv.kernel_size == (1, 3, 3)  # z too coarse at full size
    first_pool = net.encoder[0].down[0]
    assert isinstance(first_pool, nn.MaxPool3d) and tuple(first_pool.kernel_size) == (1, 2, 2)
    assert net.encoder[0].conv[0].kernel_size == (3, 3, 3)  # after one in-plane halving the spacings meet
    assert tuple(net.encoder[1].down[0].kernel_size) == (2, 2, 2)
    # the decoder undoes each downsampling with its own stride
    assert net.decoder[-1].up[1].stride == (1, 2, 2)


def test_2d_models_are_unchanged_and_a_mismatched_input_names_its_dimension():
    flat = build_generator(UNetConfig(depth=3, base_channels=4, max_channels=16))
    assert all(not isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)) for m in flat.modules())
    with pytest.raises(ValueError, match=r"a volume given to a 2D model"):
        flat(torch.randn(1, 3, 4, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 3, D, H, W\).*an image given to a 3D model"):
        build()(torch.randn(1, 3, 16, 16))


@pytest.mark.parametrize("keys,message", [
    ({"architecture": "unet++", "conv_unit": "double"}, "architecture=unet\\+\\+ is not built in 3D"),
    ({"conv_unit": "double", "down": "blurpool"}, "down=blurpool is not built in 3D"),
    ({"bottleneck": "transformer"}, "bottleneck=transformer is not built in 3D"),
    ({"spacing": [1.0, 1.0]}, r"spacing=\[1.0, 1.0\] must be 3 positive voxel sizes \(z, y, x\)"),
    ({"spacing": [1.0, 0.0, 1.0]}, "must be 3 positive"),
    ({"dims": 4}, "dims=4 must be 2"),
])
def test_what_is_not_built_in_3d_is_refused_by_name(keys, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(UNetConfig, {**TINY3D, **keys}).validate()


@pytest.mark.parametrize("kind", ["nlayer", "pixel"])
def test_the_3d_patchgan_judges_patches_of_a_volume(kind):
    d = Discriminator(1, 2, PatchGANConfig(kind=kind, base_channels=4, n_layers=2, num_scales=2), dims=3)
    logits = d(torch.randn(2, 1, 24, 32, 32), torch.randn(2, 2, 24, 32, 32))
    assert len(logits) == 2 and all(t.ndim == 5 and t.shape[:2] == (2, 1) for t in logits)
    assert all(not isinstance(m, nn.Conv2d) for m in d.modules())
    if kind == "nlayer":
        with pytest.raises(ValueError, match="along every axis"):
            d(torch.randn(1, 1, 8, 32, 32), torch.randn(1, 2, 8, 32, 32))  # z too thin for two scales


@pytest.mark.slow
def test_a_3d_generator_exports_to_onnx_with_dynamic_depth(tmp_path):
    pytest.importorskip("onnxruntime")
    from pix2pix_unet.config import Task, TrainConfig
    from pix2pix_unet.export import export_onnx, onnx_max_difference
    from pix2pix_unet.tasks import build_task

    net = build(conv_unit="double", down="maxpool", up="bilinear", spacing=[2.0, 0.5, 0.5], in_channels=1).eval()
    task = build_task(TrainConfig(task=Task.SEGMENT, generator=net.config))
    path = export_onnx(net, task, tmp_path / "net.onnx")
    assert onnx_max_difference(net, path) < 1e-4  # 2 volumes of another odd size than the traced one
    assert onnx_max_difference(net, path, torch.rand(1, 1, 9, 30, 22) * 2 - 1) < 1e-4
