"""bioimage.io packages of 3D generators (``generator.dims=3``): axes ``batch, channel, z, y, x``, each spatial axis
sized by its own downsampling factor, halos from the computed receptive field, the voxel size as the axes' scale;
``bioimageio.core``'s own model test passes them."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pix2pix_unet.cli import main, train_main
from pix2pix_unet.config import UNetConfig, from_dict
from pix2pix_unet.data.nuclei3d import Nuclei3DSpec, write_nuclei_volumes
from pix2pix_unet.export.bioimageio import (PackageContract, PackageError, PackageGeometry, halo_limits,
                                            reference_output)
from pix2pix_unet.models import UNet
from pix2pix_unet.runtime.volume_window import receptive_halo
from pix2pix_unet.tasks import generator_task
from pix2pix_unet.volume_io import read_volume
from tests.tasks.test_segment_3d import SPEC, TINY3D

core = pytest.importorskip("bioimageio.core")

ANISOTROPIC = [2.0, 0.5, 0.5]  # z 4x coarser than y, x: pooled once less
TINY = {"dims": 3, "depth": 2, "base_channels": 4, "max_channels": 16, "conv_unit": "double", "down": "maxpool",
        "up": "bilinear", "in_channels": 1}


def segmenter_3d(folder: Path, spacing: list[float] | None = ANISOTROPIC, classes: int = 3) -> UNet:
    """A random 3D segmenter loaded as an export is (its task in its metadata)."""
    torch.manual_seed(0)
    cfg = from_dict(UNetConfig, {**TINY, "out_channels": classes, "spacing": spacing})
    UNet(cfg).save_pretrained(folder, task="segment", num_classes=classes, intensity="image", schema_version=2)
    return UNet.from_pretrained(folder)


def rdf_of(package: Path) -> tuple[dict, set[str]]:
    with zipfile.ZipFile(package) as z:
        return yaml.safe_load(z.read("rdf.yaml")), set(z.namelist())


def passes_model_test(package: Path) -> list[str]:
    summary = core.test_model(package)
    failed = [f"{d.name}: {[e.msg[:300] for e in d.errors]}" for d in summary.details if d.status != "passed"]
    assert summary.status == "passed", failed
    return [d.name for d in summary.details]


def test_z_gets_its_own_step_and_halo_when_the_voxels_are_anisotropic(tmp_path):
    coarse_z = PackageGeometry.of(segmenter_3d(tmp_path / "a"))
    cubes = PackageGeometry.of(segmenter_3d(tmp_path / "b", spacing=None))
    assert coarse_z.axes == cubes.axes == ("z", "y", "x")
    # z (2 um) waits one level for y, x (0.5 um) to catch up: halved once, y and x twice
    assert coarse_z.steps == (2, 4, 4) and cubes.steps == (4, 4, 4)
    # 1 x 3 x 3 kernels at full resolution reach less far in z
    r = receptive_halo(from_dict(UNetConfig, {**TINY, "out_channels": 3, "spacing": ANISOTROPIC}))
    assert coarse_z.receptive == r and r[0] < r[1] == r[2]
    capped = (min(r[0], 8), min(r[1], 32), min(r[2], 32))
    assert coarse_z.halos == tuple(-(-h // s) * s for h, s in zip(capped, (2, 4, 4)))  # each a multiple of its step
    assert coarse_z.halos[0] < coarse_z.halos[1] and cubes.halos[0] == cubes.halos[1] == cubes.halos[2]
    assert coarse_z.minimum == tuple(2 * h + s for h, s in zip(coarse_z.halos, coarse_z.steps))
    assert coarse_z.spacing == (2.0, 0.5, 0.5) and cubes.spacing is None
    # z's default halo is capped at the extent in space of y's and x's cap (32 voxels of 0.5 um: 8 slices of 2 um)
    assert halo_limits(ANISOTROPIC) == (8, 32, 32) and halo_limits(None) == (32, 32, 32)
    # a given halo, one per axis or one for all, is rounded up to each axis's step
    assert PackageGeometry.of(segmenter_3d(tmp_path / "a"), (3, 5, 5)).halos == (4, 8, 8)
    assert PackageGeometry.of(segmenter_3d(tmp_path / "a"), 5).halos == (6, 8, 8)
    with pytest.raises(PackageError, match=r"--halo 1,2: .*one per axis \(z, y, x\)"):
        PackageGeometry.of(segmenter_3d(tmp_path / "a"), (1, 2))
    with pytest.raises(PackageError, match=r"--halo -1: one value >= 0"):
        PackageGeometry.of(segmenter_3d(tmp_path / "a"), -1)


@pytest.mark.slow
def test_a_3d_segmenter_package_has_z_axes_and_passes_bioimageio_core(tmp_path):
    from pix2pix_unet.export import export_bioimageio

    generator = segmenter_3d(tmp_path / "g")
    package = export_bioimageio(generator, generator_task(generator), tmp_path / "seg3d.zip", input_dtype="uint16",
                                onnx=False, torchscript=True)
    rdf, names = rdf_of(package)
    assert {"rdf.yaml", "weights.pt", "weights_torchscript.pt", "test_input.npy", "test_output.npy", "cover.png",
            "README.md"} <= names
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    assert [a["type"] for a in inp["axes"]] == ["batch", "channel", "space", "space", "space"]
    assert [a.get("id") for a in out["axes"][2:]] == ["z", "y", "x"]
    geometry = PackageGeometry.of(generator)
    for axis, o, step, low, halo, scale in zip(inp["axes"][2:], out["axes"][2:], geometry.steps, geometry.minimum,
                                               geometry.halos, ANISOTROPIC):
        assert axis["size"] == {"min": low, "step": step} and o["halo"] == halo
        assert axis["scale"] == o["scale"] == scale and axis["unit"] == o["unit"] == "micrometer"
    assert inp["axes"][2]["size"]["step"] == 2 and inp["axes"][3]["size"]["step"] == 4
    # intensity=image: the whole volume's min..max, as pix2pix-unet's from_volume
    assert inp["preprocessing"][1]["kwargs"]["axes"] == ["channel", "z", "y", "x"]
    assert out["postprocessing"][0]["id"] == "softmax" and "3d" in rdf["tags"]
    with zipfile.ZipFile(package) as z:
        z.extractall(tmp_path / "unzipped", ["test_input.npy", "test_output.npy", "README.md"])
    test_in = np.load(tmp_path / "unzipped" / "test_input.npy")
    test_out = np.load(tmp_path / "unzipped" / "test_output.npy")
    assert test_in.dtype == np.uint16 and test_in.shape == (1, 1, *geometry.minimum)  # the smallest valid volume
    assert test_out.shape == (1, 3, *geometry.minimum) and np.allclose(test_out.sum(1), 1, atol=1e-5)
    readme = (tmp_path / "unzipped" / "README.md").read_text()
    assert "axes `batch, channel, z, y, x`" in readme and "2, 0.5, 0.5 µm" in readme
    assert f"halo of (z, y, x) = ({', '.join(map(str, geometry.halos))}) voxels" in readme

    checks = passes_model_test(package)
    assert sum("torchscript inference" in c for c in checks) == 6  # 3 sizes, 2 batch sizes
    assert sum("pytorch_state_dict inference" in c for c in checks) == 6


@pytest.mark.slow
def test_a_3d_segmenter_trained_by_the_cli_becomes_a_package_that_labels_as_predict_does(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    data = write_nuclei_volumes(tmp_path / "vols", 3, 2, spec=SPEC)
    run = tmp_path / "run"
    assert train_main(["--task", "segment", "--data", str(data), "--output-dir", str(run), "--max-steps", "2",
                       "sample_every=2", "checkpoint_every=2", "segment.intensity=image", "segment.instances=off",
                       "generator.in_channels=1", *TINY3D]) == 0
    big = write_nuclei_volumes(tmp_path / "big", 0, 1, spec=Nuclei3DSpec(shape=(48, 112, 112)))
    sample = big / "val" / "images" / "v000.tif"
    package = tmp_path / "seg3d.zip"
    assert main(["export", "--checkpoint", str(run), "--format", "bioimageio", str(package), "--input-dtype",
                 "uint16", "--sample", str(sample), "--torchscript"]) == 0
    assert f"wrote {package}" in capsys.readouterr().out
    rdf, names = rdf_of(package)
    assert {k for k, v in rdf["weights"].items() if v} == {"onnx", "pytorch_state_dict", "torchscript"}
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    assert [a["scale"] for a in inp["axes"][2:]] == ANISOTROPIC  # the training files' voxel size
    with zipfile.ZipFile(package) as z:
        # the cover is the run's latest sample grid (middle slices)
        assert z.read("cover.png") == (run / "samples" / "step_00000002.png").read_bytes()
        z.extract("test_input.npy", tmp_path)
    test_in = np.load(tmp_path / "test_input.npy")  # (1, 1, z, y, x): the sample, cut to a size the package takes
    sizes = test_in.shape[2:]
    assert np.array_equal(test_in[0, 0], read_volume(sample).voxels[: sizes[0], : sizes[1], : sizes[2], 0])
    checks = passes_model_test(package)
    assert {"onnx", "torchscript", "pytorch_state_dict"} <= {f for c in checks for f in
                                                            ("onnx", "torchscript", "pytorch_state_dict") if f in c}

    # the default halo is capped at 32 voxels of y, x (0.5 um) and the same 16 um of z: 8 slices, below z's reach
    generator = UNet.from_pretrained(run)
    receptive = receptive_halo(generator.config)
    halos = [a["halo"] for a in out["axes"][2:]]
    assert halos[0] == 8 < receptive[0] and halos[1:] == [-(-r // 4) * 4 for r in receptive[1:]]

    # a halo that covers the receptive field, per axis from the command line (rounded up to each axis's step):
    # bioimageio.core tiles the whole sample volume into the smallest blocks the package allows, each grown by the
    # halo, and away from the border (where bioimage.io's mirrored padding gives other context than the network's
    # zero padding) its probabilities are pix2pix-unet's on the whole volume, its arg-max the labels predict writes
    exact = tmp_path / "exact.zip"
    assert main(["export", "--checkpoint", str(run), "--format", "bioimageio", str(exact), "--input-dtype", "uint16",
                 "--no-onnx", "--halo", ",".join(map(str, receptive))]) == 0
    rdf, _ = rdf_of(exact)
    hz, hy, hx = (a["halo"] for a in rdf["outputs"][0]["axes"][2:])
    assert (hz, hy, hx) == (-(-receptive[0] // 2) * 2, *(-(-r // 4) * 4 for r in receptive[1:]))
    assert main(["predict", "--checkpoint", str(run), "--input", str(sample.parent), "--output",
                 str(tmp_path / "pred"), "--device", "cpu", "--no-progress"]) == 0
    labels = read_volume(tmp_path / "pred" / "v000.tif").voxels[..., 0]  # (48, 112, 112): sizes the package takes
    volume = np.moveaxis(read_volume(sample).voxels, -1, 0)[None]  # (1, 1, z, y, x)
    tiled = core.predict(model=exact, inputs=volume, blocksize_parameter=0).members["output"].data.values
    assert tiled.shape == (1, 2, *labels.shape) and np.allclose(tiled.sum(1), 1, atol=1e-5)
    inner = (slice(hz, -hz), slice(hy, -hy), slice(hx, -hx))
    whole = reference_output(generator, PackageContract.of(generator_task(generator), "uint16"),
                             read_volume(sample).voxels)  # (1, 2, z, y, x), the volume in one piece
    assert labels[inner].size >= 8 * 8 * 8
    assert np.abs(tiled[0][(slice(None), *inner)] - whole[0][(slice(None), *inner)]).max() < 1e-4
    assert np.array_equal(tiled[0].argmax(0)[inner], labels[inner])


def test_a_3d_label_to_image_translator_is_refused_by_name_as_its_2d_twin_is(tmp_path):
    """3D translate draws image volumes from label volumes (labels.format=index): one-hot inputs, which a
    package cannot decode, so its export is refused with the reason, as the 2D label-map translator's is."""
    from pix2pix_unet.export import export_bioimageio
    from pix2pix_unet.export.bioimageio import PackageError

    cfg = from_dict(UNetConfig, {**TINY, "in_channels": 2, "out_channels": 1, "spacing": ANISOTROPIC})
    UNet(cfg).save_pretrained(tmp_path / "g", task="translate", schema_version=2, direction="AtoB",
                              label_format="index", num_classes=2)
    generator = UNet.from_pretrained(tmp_path / "g")
    with pytest.raises(PackageError, match="labels.format=index"):
        export_bioimageio(generator, generator_task(generator), tmp_path / "translate.zip", onnx=False)


@pytest.mark.slow
@pytest.mark.parametrize("task, meta", [("restore", {"hole_mask_channel": False})])
def test_3d_image_to_image_packages_go_through_the_same_task_hooks(tmp_path, task, meta):
    """No task is special-cased: a 3D restore generator gets the image post-processing of its 2D twin on z, y,
    x axes, and passes the model test."""
    from pix2pix_unet.export import export_bioimageio

    torch.manual_seed(0)
    cfg = from_dict(UNetConfig, {**TINY, "out_channels": 1, "spacing": ANISOTROPIC})
    UNet(cfg).save_pretrained(tmp_path / "g", task=task, schema_version=2, **meta)
    generator = UNet.from_pretrained(tmp_path / "g")
    package = export_bioimageio(generator, generator_task(generator), tmp_path / f"{task}.zip", onnx=False)
    rdf, _ = rdf_of(package)
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    assert [a.get("id") for a in inp["axes"]] == [None, None, "z", "y", "x"] and inp["data"]["type"] == "uint8"
    assert [p["id"] for p in out["postprocessing"]][:2] == ["clip", "scale_linear"]  # back to 0..255
    assert out["postprocessing"][1]["kwargs"] == {"gain": 127.5, "offset": 127.5}
    passes_model_test(package)
