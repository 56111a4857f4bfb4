"""``pix2pix-unet export``: ONNX with dynamic sizes (checked against PyTorch with onnxruntime) and safetensors."""

from __future__ import annotations

import json

import pytest
import torch

from pix2pix_unet import from_pretrained
from pix2pix_unet.cli import main
from pix2pix_unet.config import UNetConfig, from_dict
from pix2pix_unet.models import UNet

onnxruntime = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.mark.slow
def test_onnx_export_takes_any_size_and_matches_pytorch(tmp_path, capsys):
    torch.manual_seed(0)
    generator = UNet(from_dict(UNetConfig, {"depth": 3, "base_channels": 8, "max_channels": 32,
                                            "in_channels": 1, "out_channels": 2}))
    generator.save_pretrained(tmp_path / "g", task="translate", direction="AtoB", step=7)
    out = tmp_path / "export" / "generator.onnx"
    assert main(["export", "--checkpoint", str(tmp_path / "g"), "--format", "onnx", str(out)]) == 0
    assert "max |difference|" in capsys.readouterr().out

    model = onnx.load(str(out))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "height", "width"]
    meta = json.loads({p.key: p.value for p in model.metadata_props}["pix2pix_unet"])
    assert meta["step"] == 7 and meta["generator"]["out_channels"] == 2

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    reference = UNet.from_pretrained(tmp_path / "g")
    for shape in [(1, 1, 45, 70), (3, 1, 64, 64), (2, 1, 100, 33), (1, 1, 257, 129)]:
        x = torch.rand(shape) * 2 - 1
        (ours,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            expected = reference(x)
        assert ours.shape == tuple(expected.shape)
        assert torch.allclose(torch.from_numpy(ours), expected, atol=1e-5), shape


def test_safetensors_export_loads_with_no_other_arguments(tmp_path):
    torch.manual_seed(0)
    generator = UNet(from_dict(UNetConfig, {"depth": 2, "base_channels": 4, "max_channels": 8}))
    generator.save_pretrained(tmp_path / "run" / "checkpoints" / "generator", task="segment", num_classes=3,
                             intensity="dtype")
    assert main(["export", "--checkpoint", str(tmp_path / "run"), "--format", "safetensors",
                 str(tmp_path / "copy")]) == 0
    loaded = from_pretrained(str(tmp_path / "copy"))
    assert not loaded.training and loaded.metadata["task"] == "segment" and loaded.metadata["num_classes"] == 3
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), generator.eval()(x))


def test_export_of_a_missing_checkpoint_names_it(tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tmp_path / "nothing"), "--format", "onnx", str(tmp_path / "a.onnx")]) == 2
    assert "nothing" in capsys.readouterr().err


@pytest.mark.slow
def test_spade_onnx_export_matches_pytorch_at_several_sizes(tmp_path, capsys):
    """SPADE resizes the label map to every scale: the exported graph must do so for any input size."""
    from pix2pix_unet.models import SPADEGenerator

    torch.manual_seed(0)
    generator = SPADEGenerator(from_dict(UNetConfig, {"architecture": "spade", "depth": 3, "base_channels": 8,
                                                      "max_channels": 16, "spade_hidden": 8, "in_channels": 4,
                                                      "out_channels": 3}))
    generator.save_pretrained(tmp_path / "g", task="translate", direction="AtoB", step=3, label_format="index",
                             num_classes=4)
    out = tmp_path / "spade.onnx"
    assert main(["export", "--checkpoint", str(tmp_path / "g"), "--format", "onnx", str(out)]) == 0
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    reference = SPADEGenerator.from_pretrained(tmp_path / "g").eval()
    for shape in [(1, 4, 32, 32), (2, 4, 48, 80), (1, 4, 45, 70)]:
        labels = torch.nn.functional.one_hot(torch.randint(0, 4, (shape[0], *shape[2:])), 4).permute(0, 3, 1, 2)
        (ours,) = session.run(None, {"input": labels.float().numpy()})
        with torch.no_grad():
            expected = reference(labels.float())
        assert ours.shape == tuple(expected.shape)
        assert torch.allclose(torch.from_numpy(ours), expected, atol=1e-4), shape


# --------------------------------------------------------------------------- no side effects on the caller's model


def model_state(model: torch.nn.Module) -> dict:
    """Everything an exporter could change in place: each module's mode, each parameter's device, dtype,
    requires_grad, storage and values, each buffer's values (BatchNorm's running statistics)."""
    return {
        "modes": {n: m.training for n, m in model.named_modules()},
        "params": {n: (p.device, p.dtype, p.requires_grad, p.data_ptr(), p.detach().cpu().clone())
                   for n, p in model.named_parameters()},
        "buffers": {n: (b.device, b.detach().cpu().clone()) for n, b in model.named_buffers()},
    }


def assert_unchanged(model: torch.nn.Module, before: dict) -> None:
    after = model_state(model)
    assert after["modes"] == before["modes"]
    for name, (device, dtype, grad, ptr, value) in before["params"].items():
        assert after["params"][name][:4] == (device, dtype, grad, ptr), name
        assert torch.equal(after["params"][name][4], value), name
    for name, (device, value) in before["buffers"].items():
        assert after["buffers"][name][0] == device and torch.equal(after["buffers"][name][1], value), name


def training_generator(tmp_path, device: str = "cpu") -> tuple[UNet, object]:
    """A generator as training holds it: loaded with its export's metadata, in train mode (BatchNorm updating
    its statistics on every forward), one parameter frozen, on ``device``."""
    from pix2pix_unet.tasks import generator_task

    torch.manual_seed(0)
    UNet(from_dict(UNetConfig, {"depth": 3, "base_channels": 8, "max_channels": 32})).save_pretrained(
        tmp_path / "g", task="translate", direction="AtoB", step=1)
    generator = UNet.from_pretrained(tmp_path / "g").to(device).train()
    next(generator.parameters()).requires_grad_(False)
    return generator, generator_task(generator)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_exporters_leave_the_callers_model_as_it_was(tmp_path, device):
    from pix2pix_unet.export import export_onnx, export_safetensors, onnx_max_difference

    generator, task = training_generator(tmp_path, device)
    before = model_state(generator)
    path = export_onnx(generator, task, tmp_path / "g.onnx")
    assert_unchanged(generator, before)
    assert onnx_max_difference(generator, path) < 1e-4  # compared in eval mode, whatever the caller's mode
    assert_unchanged(generator, before)
    export_safetensors(generator, task, tmp_path / "st")
    assert_unchanged(generator, before)
    assert generator.training and next(generator.parameters()).device.type == device


@pytest.mark.slow
def test_n2v2_blind_spot_unet_exports_to_onnx(tmp_path):
    """Blur pooling (kornia's MaxBlurPool2D) and the dropped top skip trace to ONNX and match PyTorch."""
    from pix2pix_unet.config import ConvUnit, Down, Norm, Up
    from pix2pix_unet.export import export_onnx, onnx_max_difference
    from pix2pix_unet.tasks import generator_task

    torch.manual_seed(0)
    net = UNet(UNetConfig(depth=3, base_channels=8, max_channels=32, in_channels=1, out_channels=1,
                          conv_unit=ConvUnit.NAF, down=Down.BLURPOOL, up=Up.BILINEAR, norm=Norm.LAYER,
                          top_skip=False)).eval()
    path = export_onnx(net, generator_task(net), tmp_path / "n2v2.onnx")
    assert onnx_max_difference(net, path) < 1e-4
