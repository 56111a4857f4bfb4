"""UNet++'s nested topology: one node X^{i,j} per i + j <= depth, each fed by every earlier node of its level;
pruning to the head of X^{0,k}."""

import dataclasses

import pytest
import torch

from pix2pix_unet.config import Architecture, ConfigError, ConvUnit, Down, UNetConfig
from pix2pix_unet.models import UNetPlusPlus


def test_nodes_and_their_inputs():
    cfg = UNetConfig(architecture=Architecture.UNETPP, depth=3, base_channels=4, max_channels=64,
                     conv_unit=ConvUnit.DOUBLE, down=Down.MAXPOOL, dropout=0.0)
    net = UNetPlusPlus(cfg)
    # column j has the nodes of levels 0..depth-j; X^{i,j} concatenates j earlier nodes + the upsampled one
    assert [len(column) for column in net.columns] == [3, 2, 1]
    for j, column in enumerate(net.columns, start=1):
        for i, node in enumerate(column):
            width = 4 * 2**i
            assert node.conv[0].in_channels == (j + 1) * width and node.conv[-3].out_channels == width
    features = net.decode(torch.randn(1, 3, 16, 16))
    assert [tuple(f.shape) for f in features] == [(1, 4, 16, 16)] * 3  # X^{0,1}, X^{0,2}, X^{0,3}


def test_pruning_returns_that_head_and_runs_only_its_nodes():
    cfg = UNetConfig(architecture=Architecture.UNETPP, depth=3, base_channels=4, max_channels=16,
                     conv_unit=ConvUnit.DOUBLE, down=Down.MAXPOOL, dropout=0.0, deep_supervision=True)
    full = UNetPlusPlus(cfg).eval()
    pruned = UNetPlusPlus(dataclasses.replace(cfg, prune_to=2)).eval()
    pruned.load_state_dict(full.state_dict())
    ran = set()
    for name, module in pruned.named_modules():
        if name.count(".") == 2 and name.startswith(("columns", "encoder")) or name == "bottleneck":
            module.register_forward_hook(lambda m, i, o, name=name: ran.add(name))
    x = torch.randn(1, 3, 19, 22)
    with torch.no_grad():
        heads = full(x, deep=True).heads
        assert torch.equal(pruned(x), heads[1])  # X^{0,2}
        assert len(pruned(x, deep=True).heads) == 3  # training still runs every head
    ran.clear()
    with torch.no_grad():
        pruned(x)
    # i + j <= 2: X^{1,0}, X^{2,0}; X^{0,1}, X^{1,1}; X^{0,2}. Not X^{3,0}, the bottleneck, X^{2,1}, X^{1,2}, X^{0,3}
    assert {n.rsplit(".", 1)[0] for n in ran} == {"encoder.0", "encoder.1", "columns.0", "columns.1"}
    assert {n for n in ran if n.startswith("columns")} == {"columns.0.0", "columns.0.1", "columns.1.0"}


def test_pruning_needs_deep_supervision():
    cfg = UNetConfig(architecture=Architecture.UNETPP, depth=3, conv_unit=ConvUnit.DOUBLE, down=Down.MAXPOOL,
                     prune_to=2)
    with pytest.raises(ConfigError, match="prune_to=2 picks a trained UNet\\+\\+ head; it needs"):
        cfg.validate()
    with pytest.raises(ConfigError, match="prune_to=4 must be in 1..depth=3"):
        dataclasses.replace(cfg, deep_supervision=True, prune_to=4).validate()
