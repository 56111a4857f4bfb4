"""The self-supervised denoising losses: sub-samplers that share no pixel, and ZS-N2N's objective."""

from __future__ import annotations

import torch

from pix2pix_unet.losses.self_supervised import neighbour_pair, pair_downsample, zero_shot_loss
from pix2pix_unet.models.tiny import TinyDenoiser


def coordinates(h: int, w: int, c: int = 2) -> torch.Tensor:
    """``(1, c, h, w)``: every pixel holds its own flat index (each channel the same), so a sub-sampled pixel names
    its source."""
    return torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w).expand(1, c, h, w).clone()


def test_pair_downsample_averages_the_two_diagonals_of_each_cell():
    x = coordinates(4, 6)
    first, second = pair_downsample(x)
    assert first.shape == second.shape == (1, 2, 2, 3)
    assert first[0, 0, 0, 0] == (0 + 7) / 2 and second[0, 0, 0, 0] == (1 + 6) / 2  # tl+br, tr+bl of cell (0, 0)
    assert first[0, 0, 1, 2] == (16 + 23) / 2
    odd = pair_downsample(coordinates(5, 7))[0]
    assert odd.shape[-2:] == (2, 3)  # the odd row and column are left out


def test_neighbour_pairs_are_pixel_disjoint_neighbours_drawn_per_cell():
    x = coordinates(16, 16, c=3)
    first, second = neighbour_pair(x, torch.Generator().manual_seed(0))
    assert first.shape == second.shape == (1, 3, 8, 8)
    assert torch.equal(first[:, 0], first[:, 2]) and torch.equal(second[:, 1], second[:, 2])  # channels go together
    a, b = first[0, 0].long(), second[0, 0].long()
    ay, ax, by, bx = a // 16, a % 16, b // 16, b % 16
    cy, cx = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    assert torch.equal(ay // 2, cy) and torch.equal(by // 2, cy) and torch.equal(ax // 2, cx)  # inside its own cell
    assert torch.all(a != b)  # never the same pixel
    assert torch.all((ay - by).abs() + (ax - bx).abs() == 1)  # side by side or one above the other
    assert len(set((a - b).flatten().tolist())) == 4  # all four directions are drawn
    again = neighbour_pair(x, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], first)  # seeded


def test_zero_shot_loss_reaches_every_parameter_and_is_zero_for_a_perfect_denoiser_of_a_flat_image():
    net = TinyDenoiser(3, width=8)
    losses = zero_shot_loss(net, torch.rand(2, 3, 16, 16))
    assert set(losses) == {"total", "residual", "consistency"}
    losses["total"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    flat = torch.full((1, 1, 8, 8), 0.3)
    assert float(zero_shot_loss(lambda x: x, flat)["total"]) == 0.0


def test_the_grid_mask_hides_each_masked_pixels_own_value():
    from pix2pix_unet.losses.self_supervised import grid_mask

    x = torch.rand(1, 2, 12, 12)
    masked, mask = grid_mask(x, offset=5)
    assert mask.sum() == 9 and mask[0, 0, 1, 1] == 1  # offset 5 of a 4-grid: rows and columns 1, 5, 9
    assert torch.equal(masked * (1 - mask), x * (1 - mask))  # the other pixels are kept
    changed = x.clone()
    changed[..., 5, 5] += 10.0  # a masked pixel's own value
    assert torch.equal(grid_mask(changed, offset=5)[0] * mask, masked * mask)


def test_the_held_out_pixel_loss_ranks_denoisers_as_the_error_to_the_clean_image_does():
    from scipy.ndimage import gaussian_filter

    from pix2pix_unet.losses.self_supervised import grid_mask, masked_mse

    y, x = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 96), indexing="ij")
    clean = (0.5 + 0.3 * torch.sin(9 * x) * torch.cos(7 * y))[None, None]
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    self_losses, true_errors = [], []
    for blur in (0.0, 0.7, 1.2, 2.0, 4.0, 8.0):  # from no denoising to far too much
        def denoise(image: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(gaussian_filter(image.numpy(), (0, 0, blur, blur))) if blur else image
        self_losses.append(sum(float(masked_mse(denoise(grid_mask(noisy, k)[0]), noisy, grid_mask(noisy, k)[1]))
                               for k in range(16)) / 16)
        true_errors.append(float((denoise(noisy) - clean).pow(2).mean()))
    assert min(range(6), key=self_losses.__getitem__) == min(range(6), key=true_errors.__getitem__)
    assert sorted(range(6), key=self_losses.__getitem__)[:3] == sorted(range(6), key=true_errors.__getitem__)[:3]


def test_the_neighbour_regulariser_is_zero_when_the_whole_image_agrees():
    from pix2pix_unet.losses.self_supervised import neighbour_choice, neighbour_loss, neighbour_subsample

    noisy = torch.rand(2, 3, 8, 8)
    choice = neighbour_choice(noisy, torch.Generator().manual_seed(1))
    first, second = neighbour_subsample(noisy, choice)
    losses = neighbour_loss(first, second, first, second, gamma=2.0)
    assert float(losses["regulariser"]) == 0.0 and float(losses["total"]) == float(losses["reconstruction"]) > 0


def test_the_blind_spot_mask_never_lets_a_masked_pixels_own_value_reach_the_input():
    from pix2pix_unet.losses.self_supervised import blind_spot_mask

    x = torch.rand(3, 2, 32, 32)
    masked, mask = blind_spot_mask(x, 0.05, torch.Generator().manual_seed(0))
    assert mask.shape == (3, 1, 32, 32) and torch.all(mask.flatten(1).sum(1) >= 1)
    assert torch.equal(masked * (1 - mask), x * (1 - mask))  # the other pixels are kept
    changed = x + 5.0 * mask  # every masked pixel's own value, changed
    again, same = blind_spot_mask(changed, 0.05, torch.Generator().manual_seed(0))
    assert torch.equal(same, mask) and torch.equal(again, masked)  # nowhere in the masked image
    alone = torch.nn.functional.avg_pool2d(mask, 3, 1, 1, count_include_pad=True) * 9
    assert torch.all(alone[mask > 0].round() == 1)  # no blind spot beside another
    one = blind_spot_mask(torch.rand(2, 1, 8, 8), 1e-9)[1]
    assert torch.equal(one.flatten(1).sum(1), torch.ones(2))  # at least one blind spot an image
