"""UNet++'s nested topology: one node X^{i,j} per i + j <= depth, each fed by every earlier node of its level."""

import torch

from pix2pix_unet.config import Architecture, ConvUnit, Down, UNetConfig
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
