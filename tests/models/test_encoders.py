"""timm encoders (``architecture=timm-unet``, presets ``resnet34-unet`` and ``vgg11-unet``): shapes at odd sizes,
gradients, weights from a file or the hub cache (adapted to 1 and 4 channels), bad configs, save/reload, ONNX.

Nothing is downloaded: the "pretrained" weights are random timm state dicts written to files here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from pix2pix_unet.config import ConfigError, UNetConfig, from_dict
from pix2pix_unet.models import Generator, TimmUNet, build_generator

timm = pytest.importorskip("timm")


def config(preset: str = "resnet34-unet", **overrides) -> UNetConfig:
    return from_dict(UNetConfig, {"preset": preset, **overrides})


def state_dict_file(path: Path, name: str, seed: int = 0) -> tuple[Path, dict[str, torch.Tensor]]:
    """A whole timm classifier's random state dict in ``path``, as an ImageNet checkpoint would be stored."""
    torch.manual_seed(seed)
    state = {k: v.contiguous() for k, v in timm.create_model(name).state_dict().items()}
    save_file(state, str(path))
    return path, state


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    return state_dict_file(tmp_path_factory.mktemp("weights") / "resnet18.safetensors", "resnet18")


@pytest.fixture(scope="module")
def resnet34_unet() -> TimmUNet:
    torch.manual_seed(0)
    return build_generator(config())


@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 3, 64, 64), (1, 3, 17, 90)])
def test_resnet34_unet_keeps_any_input_size(resnet34_unet, shape):
    assert resnet34_unet(torch.randn(shape)).shape == shape


def test_the_decoder_follows_the_encoders_stages(resnet34_unet):
    assert resnet34_unet.encoder.strides == [2, 4, 8, 16, 32]
    assert resnet34_unet.encoder.channels == [64, 64, 128, 256, 512]
    assert resnet34_unet.level_strides == [16, 8, 4, 2, 1]
    # smp's decoder widths; ResNet has no stride-1 stage, so the top level merges nothing
    assert [level.conv[0].out_channels for level in resnet34_unet.decoder] == [256, 128, 64, 32, 16]
    assert [level.skip is None for level in resnet34_unet.decoder] == [False] * 4 + [True]


@pytest.mark.slow
def test_vgg11_unet_is_ternausnet_shaped():
    net = build_generator(config("vgg11-unet", in_channels=1, out_channels=2))
    assert net.encoder.strides == [1, 2, 4, 8, 16, 32]  # the full-resolution skip comes from VGG's first conv
    assert [level.skip is not None for level in net.decoder] == [True] * 5
    assert net(torch.randn(1, 1, 33, 47)).shape == (1, 2, 33, 47)


@pytest.mark.slow
@pytest.mark.parametrize("name, depth, strides", [("efficientnet_b0", 5, [2, 4, 8, 16, 32]),
                                                  ("convnext_atto", 5, [4, 8, 16, 32]),
                                                  ("resnet18", 4, [2, 4, 8, 16])])
def test_other_timm_cnns_and_shallower_depths(name, depth, strides):
    net = build_generator(config(encoder={"name": name}, depth=depth, base_channels=8, max_channels=32,
                                 out_channels=2))
    assert net.encoder.strides == strides
    assert net(torch.randn(2, 3, 35, 21)).shape == (2, 2, 35, 21)
    if name == "resnet18":  # stopping at stride 16 drops ResNet's last stage altogether
        assert not any(n.startswith("encoder.model.layer4") for n, _ in net.named_parameters())


@pytest.mark.slow
def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = build_generator(config(encoder={"name": "resnet18"}, base_channels=8, max_channels=32))
    with torch.no_grad():  # timm starts each residual branch's last BN at 0 (so its convs get no gradient yet)
        for name, p in net.named_parameters():
            if name.endswith("bn2.weight"):
                p.fill_(1.0)
    net(torch.randn(2, 3, 40, 56)).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    assert {id(p) for p in net.encoder_parameters()} == {
        id(p) for n, p in net.named_parameters() if n.startswith("encoder.")}


@pytest.mark.slow
def test_weights_load_from_a_file_and_are_reproduced(resnet18_file, tmp_path):
    path, state = resnet18_file
    cfg = config(encoder={"name": "resnet18", "weights": str(path)}, base_channels=8, max_channels=32)
    net = build_generator(cfg)
    loaded = net.encoder.model.state_dict()
    assert set(loaded) <= set(state) and len(loaded) == len(state) - 2  # all but the classifier's fc
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key
    assert not torch.equal(TimmUNet(cfg).encoder.model.conv1.weight, state["conv1.weight"])  # built alone: random

    # the export holds every weight: from_pretrained needs (and reads) no weights file
    net.eval().save_pretrained(tmp_path / "g")
    path.rename(path.with_suffix(".moved"))
    try:
        reloaded = Generator.from_pretrained(tmp_path / "g")
    finally:
        path.with_suffix(".moved").rename(path)
    x = torch.randn(1, 3, 45, 30)
    with torch.no_grad():
        assert torch.equal(reloaded(x), net(x))


@pytest.mark.parametrize("in_channels", [1, 4])
def test_the_first_conv_is_adapted_to_any_channel_count(resnet18_file, in_channels):
    path, state = resnet18_file
    net = build_generator(config(in_channels=in_channels, encoder={"name": "resnet18", "weights": str(path)},
                                 base_channels=8, max_channels=32))
    rgb = state["conv1.weight"]
    conv = net.encoder.model.conv1.weight
    if in_channels == 1:  # a gray image seen as R = G = B
        assert torch.allclose(conv, rgb.sum(1, keepdim=True))
    else:  # RGB repeated (R again for the 4th) and scaled by 3 / 4, so the response keeps its size
        assert torch.allclose(conv, torch.cat([rgb, rgb[:, :1]], 1) * 3 / 4)
    assert torch.equal(net.encoder.model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert net.encoder.mean.shape == (1, in_channels, 1, 1)
    assert net(torch.randn(1, in_channels, 40, 40)).shape == (1, 3, 40, 40)


def test_weights_load_from_the_hub_cache_offline(resnet18_file, tmp_path, monkeypatch):
    """``weights: hub`` with HF_HUB_OFFLINE=1 reads the Hugging Face cache, laid out as the hub writes it."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    from huggingface_hub import constants

    path, state = resnet18_file
    repo, revision = "timm/resnet18.a1_in1k", "0" * 40
    snapshot = tmp_path / "hub" / "models--timm--resnet18.a1_in1k" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(path.read_bytes())
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(revision)
    # the hub's own reader finds the file, so this is the cache it would have written
    assert huggingface_hub.try_to_load_from_cache(repo, "model.safetensors", cache_dir=tmp_path / "hub") == str(
        snapshot / "model.safetensors")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cfg = config(encoder={"name": "resnet18", "weights": "hub"}, base_channels=8, max_channels=32)
    net = build_generator(cfg)
    assert torch.equal(net.encoder.model.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    # a repo the cache does not hold: the error names the setting and that nothing was downloaded
    with pytest.raises(ConfigError, match=r"weights='hf-hub:timm/resnet18.tv_in1k': cannot load .*HF_HUB_OFFLINE=1"):
        build_generator(config(encoder={"name": "resnet18", "weights": "hf-hub:timm/resnet18.tv_in1k"}))


def test_bad_encoder_settings_are_named(resnet18_file, tmp_path):
    with pytest.raises(ConfigError, match=r"generator.encoder.name='resnet35' is not a timm model"):
        build_generator(config(encoder={"name": "resnet35"}))
    with pytest.raises(ConfigError, match=r"generator.depth=6 asks for an encoder of stride 64, but resnet18's "
                                          r"feature stages have strides \[2, 4, 8, 16, 32\]; set generator.depth=5"):
        build_generator(config(encoder={"name": "resnet18"}, depth=6))
    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(ConfigError, match=f"generator.encoder.weights='{missing}': no such file"):
        build_generator(config(encoder={"name": "resnet18", "weights": str(missing)}))
    path, _ = resnet18_file  # resnet18's weights do not fit resnet34: the message says which file and model
    with pytest.raises(ConfigError, match=rf"{path} is not a state dict of timm's 'resnet34': 96 of the encoder's "
                                          r"216 tensors do not fit: layer1.2.conv1.weight missing; .* and 92 more"):
        build_generator(config(encoder={"weights": str(path)}))
    with pytest.raises(ConfigError, match="timm-unet needs a decoder conv_unit"):
        config(conv_unit="none").validate()


@pytest.mark.slow
def test_onnx_export_matches_pytorch(tmp_path):
    """The resnet34-unet preset with a sin-cos transformer bottleneck on top: both new paths in one graph."""
    pytest.importorskip("onnxruntime")
    from pix2pix_unet.export import export_onnx, onnx_max_difference
    from pix2pix_unet.tasks import generator_task

    torch.manual_seed(0)
    net = build_generator(config(bottleneck="transformer", in_channels=1,
                                 transformer={"depth": 1, "heads": 4, "dim": 64, "position": "sinusoidal"})).eval()
    path = export_onnx(net, generator_task(net), tmp_path / "resnet34.onnx")
    assert onnx_max_difference(net, path) < 1e-4  # 2 images of 71 x 41 px, not the traced size
