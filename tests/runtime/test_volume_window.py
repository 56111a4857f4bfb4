"""Sliding-window inference over volumes: the receptive-field halo, the window plan, crop and Gaussian blending
against a whole-volume run, whole-volume normalisation, the out-of-memory retry, writing into a VolumeWriter, memory
-map input and the memory budget."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from pix2pix_unet.config import ConfigError, UNetConfig, from_dict
from pix2pix_unet.models import build_generator
from pix2pix_unet.runtime.volume_window import (
    estimate_window_bytes, percentile_normalizer, plan_windows, predict_volume, receptive_halo, volume_statistics,
    window_for_budget,
)
from pix2pix_unet.volume_io import VolumeWriter, read_volume, write_volume

TINY = dict(base_channels=4, max_channels=16, dims=3, in_channels=1, out_channels=1)


def net(**keys) -> nn.Module:
    torch.manual_seed(0)
    return build_generator(from_dict(UNetConfig, {**TINY, "depth": 2, "norm": "batch", **keys})).eval()


def smooth_volume(shape=(20, 40, 44), seed=0) -> np.ndarray:
    """uint16 ``(Z, Y, X, 1)``: smooth structure, as a microscope volume has."""
    rng = np.random.default_rng(seed)
    return (gaussian_filter(rng.random(shape), 2) * 60000).astype(np.uint16)[..., None]


def to_zyxc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 3, 0).numpy()  # (c, z, y, x) -> (z, y, x, c)


@torch.no_grad()
def whole(generator: nn.Module, volume: np.ndarray, to_input) -> np.ndarray:
    return to_zyxc(generator(to_input(volume)[None])[0])


def tiled(generator: nn.Module, volume, to_input, **kw) -> np.ndarray:
    out = np.full((*volume.shape[:3], 1), np.nan, np.float32)
    predict_volume(generator, volume, to_input=to_input, from_output=to_zyxc, out=out, **kw)
    return out


# --------------------------------------------------------------------------- the halo


@pytest.mark.parametrize("keys", [
    {"norm": "none"},  # pix2pix: strided convs down, transposed convs up
    {"conv_unit": "double", "down": "maxpool", "up": "bilinear", "spacing": [4.0, 1.0, 1.0]},  # 1x3x3 kernels first
    {"conv_unit": "residual", "up": "nearest", "skip": "attention", "spacing": [1.0, 3.0, 1.0]},
], ids=["pix2pix", "double-anisotropic", "residual-attention"])
def test_the_halo_covers_the_measured_receptive_field(keys):
    generator = net(**keys)
    cfg = generator.config
    halo, factors = receptive_halo(cfg), cfg.axis_factors
    side = [-(-(2 * h + 2 * f) // f) * f for h, f in zip(halo, factors)]
    x = torch.rand(1, 1, *side)
    reach = [0, 0, 0]
    for phase in (0, 1):  # two phases of the strided grid
        centre = [s // 2 + phase for s in side]
        moved = x.clone()
        moved[(0, 0, *centre)] += 1.0
        with torch.no_grad():
            changed = (generator(moved) - generator(x))[0, 0].abs().gt(0).nonzero()  # (n, 3) output voxels
        assert len(changed)
        for a in range(3):
            reach[a] = max(reach[a], int((changed[:, a] - centre[a]).abs().max()))
    # inside the halo on every axis, and not loose: within one factor of it (exact where the phase hits the reach)
    assert all(r <= h for r, h in zip(reach, halo)), (reach, halo)
    assert all(r >= h - f for r, h, f in zip(reach, halo, factors)), (reach, halo)
    if keys.get("spacing") == [4.0, 1.0, 1.0]:
        assert halo[0] < halo[1]  # the 1-wide z kernels reach less far


def test_the_halo_refuses_what_no_halo_covers():
    with pytest.raises(ConfigError, match="bottleneck=aspp"):
        receptive_halo(from_dict(UNetConfig, {**TINY, "conv_unit": "double", "bottleneck": "aspp"}))
    with pytest.raises(ConfigError, match="dims=2"):
        receptive_halo(UNetConfig(depth=2))


# --------------------------------------------------------------------------- the plan


@pytest.mark.parametrize("shape, window, halo, factors, overlap", [
    ((20, 40, 44), (32, 32, 32), (9, 9, 9), (4, 4, 4), (0, 0, 0)),
    ((19, 38, 41), (16, 40, 24), (3, 5, 2), (2, 4, 4), (0, 0, 0)),  # odd sizes: the last cores end in the padding
    ((7, 100, 9), (64, 48, 64), (4, 8, 4), (1, 8, 8), (2, 6, 1)),  # axes shorter than the window, with overlap
])
def test_plan_windows_tiles_every_voxel_exactly_once(shape, window, halo, factors, overlap):
    windows = plan_windows(shape, window, halo, factors, overlap)
    count = np.zeros(shape, np.int32)
    for w in windows:
        count[w.core] += 1
        for a, (inp, core, blend, n, f) in enumerate(zip(w.input, w.core, w.blend, shape, factors)):
            padded = -(-n // f) * f
            assert inp.start % f == 0 and (inp.stop - inp.start) % f == 0 and 0 <= inp.start and inp.stop <= padded
            assert inp.stop - inp.start <= max(window[a] // f * f, padded)
            assert w.offset[a] == core.start - inp.start and w.blend_offset[a] == blend.start - inp.start
            assert blend.start <= core.start and core.stop <= blend.stop <= n
            # the halo is whole where the volume goes on
            if inp.start > 0:
                assert core.start - inp.start >= halo[a] + overlap[a]
            if inp.stop < padded:
                assert inp.stop - core.stop >= halo[a] + overlap[a]
    assert count.min() == 1 and count.max() == 1
    zs = [w.core[0].start for w in windows]
    assert zs == sorted(zs)  # z-major: the slabs come in order


def test_plan_windows_names_a_window_too_small_for_its_halo():
    with pytest.raises(ValueError, match=r"window=\(16, 64, 64\).*axis z.*at least.*28"):
        plan_windows((40, 64, 64), (16, 64, 64), (12, 12, 12), (4, 4, 4))


# --------------------------------------------------------------------------- blending


@pytest.mark.parametrize("keys, shape", [
    ({}, (20, 40, 44)),
    ({"up": "bilinear", "norm": "none", "spacing": [4.0, 1.0, 1.0]}, (19, 38, 41)),  # factors (2, 4, 4), odd sizes
])
def test_crop_tiled_equals_the_whole_volume(keys, shape):
    generator = net(**keys)
    volume = smooth_volume(shape)
    to_input = percentile_normalizer(volume_statistics(volume))
    expected = whole(generator, volume, to_input)
    got = tiled(generator, volume, to_input, window=(32, 32, 32), blend="crop")
    assert len(plan_windows(shape, (32, 32, 32), receptive_halo(generator.config),
                            generator.config.axis_factors)) >= 8
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def _seam_ratio(out: np.ndarray, boundaries: list[int], factor: int) -> float:
    """Mean |difference| of x-neighbours across the window boundaries over that inside the windows, at the
    same phase of the strided grid (the net's checkerboard makes some phases differ more)."""
    d = np.abs(np.diff(out[..., 0], axis=2))  # d[..., i] = |out[i + 1] - out[i]|
    across = np.mean([d[..., b - 1].mean() for b in boundaries])
    inside = np.mean([d[..., i].mean() for i in range(d.shape[2])
                      if i + 1 not in boundaries and (i + 1) % factor == 0])
    return float(across / inside)


def test_gaussian_blending_is_close_to_whole_and_leaves_no_seams():
    generator = net(up="bilinear")
    volume = smooth_volume()
    to_input = percentile_normalizer(volume_statistics(volume))
    expected = whole(generator, volume, to_input)
    # with the full halo every blended output is exact
    got = tiled(generator, volume, to_input, window=(40, 40, 40), blend="gaussian", overlap=(4, 4, 4))
    assert np.abs(got - expected).max() < 1e-4
    # without a halo the windows' borders are wrong; crop shows them as seams, the Gaussian cross-fades them
    factors = generator.config.axis_factors
    boundaries = sorted({w.core[2].stop for w in plan_windows(volume.shape[:3], (32,) * 3, (0,) * 3, factors,
                                                             (8,) * 3)})[:-1]
    assert boundaries == [16, 32]
    blended = tiled(generator, volume, to_input, window=(32,) * 3, halo=(0,) * 3, blend="gaussian",
                    overlap=(8,) * 3)
    cropped = tiled(generator, volume, to_input, window=(16,) * 3, halo=(0,) * 3, blend="crop")
    smooth = _seam_ratio(expected, boundaries, 4)
    assert abs(_seam_ratio(blended, boundaries, 4) - smooth) < 0.02
    assert abs(_seam_ratio(cropped, boundaries, 4) - smooth) > 0.2  # the measure does see a seam
    assert np.abs(blended - expected).max() < np.abs(cropped - expected).max() / 10


# --------------------------------------------------------------------------- normalisation


def test_normalisation_comes_from_the_whole_volume_not_the_window():
    generator = net()
    volume = smooth_volume((20, 40, 48))
    volume[:, :, 24:] = volume[:, :, 24:] // 8  # the right half is dim
    stats = volume_statistics(volume)
    to_input = percentile_normalizer(stats)
    expected = whole(generator, volume, to_input)
    np.testing.assert_allclose(tiled(generator, volume, to_input, window=(32,) * 3), expected, atol=1e-5, rtol=0)

    # what per-window normalisation would give: each window stretched by its own percentiles
    def per_window(block: np.ndarray) -> torch.Tensor:
        return percentile_normalizer(volume_statistics(block))(block)

    assert np.abs(tiled(generator, volume, per_window, window=(32,) * 3) - expected).max() > 0.05
    # the statistics: every voxel (small volume), per channel, and a strided sample of a large one
    np.testing.assert_allclose(stats.low, np.percentile(volume, 1.0)) and stats.stride == 1
    sampled = volume_statistics(volume, sample=1000)
    assert sampled.stride > 1 and sampled.sampled <= 1000
    assert abs(sampled.high[0] - stats.high[0]) < 0.1 * stats.high[0]
    with pytest.raises(ValueError, match=r"percentiles=\(50, 10\)"):
        volume_statistics(volume, percentiles=(50, 10))


# --------------------------------------------------------------------------- out of memory


class Doubler(nn.Module):
    """Doubles its input; out of memory on a window of more than ``limit`` voxels."""

    def __init__(self, limit: int, error: type[Exception] = torch.OutOfMemoryError,
                 message: str = "CUDA out of memory. Tried to allocate 2.00 GiB") -> None:
        super().__init__()
        self.limit, self.error, self.message, self.seen = limit, error, message, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape[2:]))
        if x[0, 0].numel() > self.limit:
            raise self.error(self.message)
        return 2 * x


@pytest.mark.parametrize("error, message", [
    (torch.OutOfMemoryError, "CUDA out of memory. Tried to allocate 2.00 GiB"),
    (RuntimeError, "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to "
                   "allocate 8589934592 bytes"),
], ids=["torch", "cpu-allocator"])
@pytest.mark.parametrize("blend", ["crop", "gaussian"])
def test_out_of_memory_halves_the_window_and_retries(error, message, blend, capsys):
    volume = smooth_volume((16, 32, 32))
    to_input = percentile_normalizer(volume_statistics(volume))
    fake = Doubler(limit=16 * 16 * 16, error=error, message=message).eval()
    out = np.full((*volume.shape[:3], 1), np.nan, np.float32)
    window = predict_volume(fake, volume, to_input=to_input, from_output=to_zyxc, out=out, window=(16, 32, 32),
                            halo=(2, 2, 2), factors=(4, 4, 4), blend=blend,
                            overlap=(2, 2, 2) if blend == "gaussian" else None)
    assert np.prod(window) <= 16 ** 3 and all(w % 4 == 0 for w in window)
    assert "out of memory on a window of (16, 32, 32)" in capsys.readouterr().err
    np.testing.assert_allclose(out, 2 * to_zyxc(to_input(volume)), atol=1e-5)
    failed = [i for i, s in enumerate(fake.seen) if np.prod(s) > 16 ** 3]
    assert failed and failed[-1] < len(fake.seen) - 1  # it failed, then the smaller windows ran to the end


def test_out_of_memory_is_raised_once_the_window_cannot_shrink_and_other_errors_at_once():
    volume = smooth_volume((16, 32, 32))
    to_input = percentile_normalizer(volume_statistics(volume))
    out = np.zeros((*volume.shape[:3], 1), np.float32)
    kw = dict(to_input=to_input, from_output=to_zyxc, out=out, window=(16, 32, 32), halo=(2, 2, 2), factors=(4,) * 3)
    with pytest.raises(torch.OutOfMemoryError):
        predict_volume(Doubler(limit=10).eval(), volume, **kw)
    other = Doubler(limit=10, error=RuntimeError, message="shape mismatch").eval()
    with pytest.raises(RuntimeError, match="shape mismatch"):
        predict_volume(other, volume, **kw)
    assert len(other.seen) == 1  # not retried


# --------------------------------------------------------------------------- files and memory maps


def test_writing_into_a_volume_writer_gives_the_file_write_volume_writes(tmp_path):
    generator = net()
    volume = smooth_volume((12, 40, 40))
    to_input = percentile_normalizer(volume_statistics(volume))

    def to_uint16(t: torch.Tensor) -> np.ndarray:
        return to_zyxc(((t.clamp(-1, 1) + 1) * 32767.5).round().to(torch.int32)).astype(np.uint16)

    for blend, overlap in (("crop", None), ("gaussian", (2, 2, 2))):
        in_memory = np.zeros((12, 40, 40, 1), np.uint16)
        predict_volume(generator, volume, to_input=to_input, from_output=to_uint16, out=in_memory,
                       window=(32, 32, 32), blend=blend, overlap=overlap)
        write_volume(tmp_path / f"{blend}-whole.tif", in_memory, spacing=(2.0, 0.5, 0.5))
        with VolumeWriter(tmp_path / f"{blend}-blocks.tif", (12, 40, 40, 1), np.uint16, spacing=(2.0, 0.5, 0.5)) as w:
            predict_volume(generator, volume, to_input=to_input, from_output=to_uint16, out=w, window=(32, 32, 32),
                           blend=blend, overlap=overlap)
        blocks, one = read_volume(tmp_path / f"{blend}-blocks.tif"), read_volume(tmp_path / f"{blend}-whole.tif")
        np.testing.assert_array_equal(blocks.voxels, one.voxels)
        assert blocks.spacing == one.spacing == (2.0, 0.5, 0.5) and blocks.axes == one.axes
        assert in_memory.std() > 0


class CountingReads:
    """A volume that records the size of every read (a memory map stands behind it)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.reads = array, []
        self.shape, self.ndim, self.dtype = array.shape, array.ndim, array.dtype

    def __getitem__(self, key):
        block = self.array[key]
        self.reads.append(block.size)
        return block


def test_memory_mapped_input_reads_only_windows(tmp_path):
    generator = net()
    volume = smooth_volume((20, 40, 44))
    to_input = percentile_normalizer(volume_statistics(volume))
    expected = tiled(generator, volume, to_input, window=(32,) * 3)
    tifffile.imwrite(tmp_path / "in.tif", volume[..., 0])
    mapped = tifffile.memmap(tmp_path / "in.tif")  # (Z, Y, X), read lazily
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(tiled(generator, mapped, to_input, window=(32,) * 3), expected)
    counted = CountingReads(np.memmap(tmp_path / "raw.u16", np.uint16, "w+", shape=volume.shape))
    counted.array[:] = volume
    np.testing.assert_array_equal(tiled(generator, counted, to_input, window=(32,) * 3), expected)
    assert max(counted.reads) <= 32 ** 3 < volume.size  # no read larger than a window


# --------------------------------------------------------------------------- memory budget


def test_window_for_budget_is_the_largest_window_that_fits():
    cfg = from_dict(UNetConfig, {**TINY, "depth": 3, "base_channels": 8, "conv_unit": "double",
                                 "spacing": [2.0, 0.5, 0.5]})
    factors = cfg.axis_factors
    small, large = (window_for_budget(cfg, 1, b) for b in (64 * 2**20, 512 * 2**20))
    for window, budget in ((small, 64 * 2**20), (large, 512 * 2**20)):
        assert all(w % f == 0 for w, f in zip(window, factors))
        assert estimate_window_bytes(cfg, window, 1) <= budget
        bigger = tuple(w + f for w, f in zip(window, factors))
        assert estimate_window_bytes(cfg, bigger, 1) > budget
    assert np.prod(large) > np.prod(small)
    assert 2 <= large[1] / large[0] <= 6  # about isotropic in micrometres: 4x the voxels in y as in z
    capped = window_for_budget(cfg, 1, 512 * 2**20, shape=(10, 30, 2000))
    assert capped[:2] == (12, 32) and capped[2] > large[2]  # capped at the padded volume; x takes the room
    with pytest.raises(ValueError, match="budget_bytes=1000 is below"):
        window_for_budget(cfg, 1, 1000)


# --------------------------------------------------------------------------- errors


def test_bad_arguments_are_named():
    generator = net()
    volume = smooth_volume((12, 40, 40))
    kw = dict(to_input=percentile_normalizer(volume_statistics(volume)), from_output=to_zyxc,
              out=np.zeros((12, 40, 40, 1), np.float32), window=(32,) * 3)
    with pytest.raises(ValueError, match="blend='linear'"):
        predict_volume(generator, volume, blend="linear", **kw)
    with pytest.raises(ValueError, match=r"overlap=\(4, 4, 4\).*gaussian"):
        predict_volume(generator, volume, overlap=(4, 4, 4), **kw)
    with pytest.raises(ValueError, match="training mode"):
        predict_volume(generator.train(), volume, **kw)
    with pytest.raises(ValueError, match="pass halo= and factors="):
        predict_volume(Doubler(10**9).eval(), volume, **kw)


@pytest.mark.parametrize("depth,exact", [(1, True), (2, False)])
def test_run_generator_slides_a_window_over_a_large_volume(depth, exact):
    """A window at least twice the receptive field: crops with a halo, equal to the whole pass; a smaller one
    (the deeper net): half-window steps blended with Gaussian weights, close to it."""
    from pix2pix_unet.config import InferenceConfig, UNetConfig
    from pix2pix_unet.models import build_generator
    from pix2pix_unet.runtime import run_generator

    torch.manual_seed(0)
    net = build_generator(UNetConfig(dims=3, depth=depth, base_channels=4, max_channels=8, conv_unit="double",
                                     down="maxpool", up="bilinear", in_channels=1, out_channels=2,
                                     spacing=[2.0, 0.5, 0.5])).eval()
    volume = torch.randn(1, 1, 14, 100, 100)  # windows of about 72 on y and x: several per axis
    whole = run_generator(net, volume, InferenceConfig(), "cpu")
    # 0 megavoxels: always by window; a budget that makes the window a fraction of the volume
    tiled = run_generator(net, volume, InferenceConfig(tile_above_mp=0, volume_budget_mb=16, batch_size=2), "cpu")
    assert tiled.shape == whole.shape == (1, 2, 14, 100, 100)
    if exact:
        assert torch.allclose(tiled, whole, atol=1e-6)
    else:
        assert not torch.allclose(tiled, whole, atol=1e-6)  # the other path was taken
        assert (tiled - whole).abs().max() < 1e-3 * whole.abs().max()
