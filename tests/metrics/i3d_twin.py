"""PyTorch twin of piergiaj's pytorch-i3d `InceptionI3d`, written here because no installed package provides it.

It reproduces that implementation's behaviour and state-dict names (the
reference pytorch-i3d port of DeepMind's kinetics-i3d): TF "SAME" padding
computed per input size and applied with zeros before each conv and max
pool, BatchNorm3d(eps=1e-3), modules `Conv3d_1a_7x7`, `Mixed_3b.b0` ...
`Mixed_3b.b3b`, `logits.conv3d`, and a forward that returns (B, classes, T')
logits after a 2x7x7 average pool.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _same_pads(size_thw, kernel, stride):
    """F.pad argument (w, w, h, h, t, t) for TF SAME: total k - s (or k - size % s), front gets the floor half."""
    pads = []
    for s, k, st in zip(size_thw, kernel, stride):
        total = max(k - st, 0) if s % st == 0 else max(k - s % st, 0)
        pads.append((total // 2, total - total // 2))
    (tf, tb), (hf, hb), (wf, wb) = pads
    return (wf, wb, hf, hb, tf, tb)


class MaxPool3dSame(nn.MaxPool3d):
    def forward(self, x):
        return super().forward(F.pad(x, _same_pads(x.shape[2:], self.kernel_size, self.stride)))


class Unit3D(nn.Module):
    def __init__(self, cin, cout, kernel=(1, 1, 1), stride=(1, 1, 1), relu=True, use_bn=True, bias=False):
        super().__init__()
        self.kernel, self.stride, self.relu, self.use_bn = kernel, stride, relu, use_bn
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride, padding=0, bias=bias)
        if use_bn:
            self.bn = nn.BatchNorm3d(cout, eps=0.001, momentum=0.01)

    def forward(self, x):
        x = self.conv3d(F.pad(x, _same_pads(x.shape[2:], self.kernel, self.stride)))
        if self.use_bn:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class InceptionModule(nn.Module):
    def __init__(self, cin, c):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5])

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class InceptionI3d(nn.Module):
    def __init__(self, num_classes=400):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule(192, [64, 96, 128, 16, 32, 32])
        self.Mixed_3c = InceptionModule(256, [128, 128, 192, 32, 96, 64])
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionModule(480, [192, 96, 208, 16, 48, 64])
        self.Mixed_4c = InceptionModule(512, [160, 112, 224, 24, 64, 64])
        self.Mixed_4d = InceptionModule(512, [128, 128, 256, 24, 64, 64])
        self.Mixed_4e = InceptionModule(512, [112, 144, 288, 32, 64, 64])
        self.Mixed_4f = InceptionModule(528, [256, 160, 320, 32, 128, 128])
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule(832, [256, 160, 320, 32, 128, 128])
        self.Mixed_5c = InceptionModule(832, [384, 192, 384, 48, 128, 128])
        self.avg_pool = nn.AvgPool3d((2, 7, 7), (1, 1, 1))
        self.logits = Unit3D(1024, num_classes, relu=False, use_bn=False, bias=True)

    def extract_mixed_5c(self, x):
        for name, module in self.named_children():
            if name == "avg_pool":
                return x
            x = module(x)

    def head(self, x):
        return self.logits(self.avg_pool(x)).squeeze(3).squeeze(3)  # (B, classes, T')

    def forward(self, x):
        return self.head(self.extract_mixed_5c(x))


def random_i3d(seed: int = 0, example_shape=(2, 3, 8, 64, 64)) -> InceptionI3d:
    """Random weights, BN statistics calibrated on a random clip; BN weights stay 1 as in the converted
    DeepMind checkpoint (our I3D, like Sonnet's, has no BN scale)."""
    from metrics_refs import calibrate

    torch.manual_seed(seed)
    model = InceptionI3d()
    example = 2 * torch.rand(example_shape, generator=torch.Generator().manual_seed(seed)) - 1
    calibrate(_Trunk(model), example, seed, scale=False)
    return model


class _Trunk(nn.Module):
    """The network up to Mixed_5c (the logits need 16 x 224 input), for calibration."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.extract_mixed_5c(x)
