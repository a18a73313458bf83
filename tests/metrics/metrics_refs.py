"""Reference networks for the metric parity tests: pytorch-fid's own InceptionV3 with random weights."""

from __future__ import annotations

import numpy as np
import torch

import torchvision_stub


def randomise(module: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random BN affine terms and running statistics (defaults are 1/0, which would hide a swapped leaf)."""
    g = torch.Generator().manual_seed(seed)
    state = module.state_dict()
    for key, value in state.items():
        if not value.is_floating_point():
            continue
        if key.endswith(("bn.weight", "running_var")):
            state[key] = 0.5 + torch.rand(value.shape, generator=g)
        elif key.endswith(("bn.bias", "running_mean")):
            state[key] = 0.1 * torch.randn(value.shape, generator=g)
    return state


def pytorch_fid_inception(seed: int = 0, **kwargs):
    """`pytorch_fid.inception.InceptionV3(**kwargs)` whose FID weights are random instead of downloaded.

    Returns (model in eval mode, the state dict it loaded: what the real .pth file would hold).
    """
    torchvision_stub.install()
    import pytorch_fid.inception as pfi

    torch.manual_seed(seed)
    state = randomise(torchvision_stub.Inception3(num_classes=1008, aux_logits=False), seed)
    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *a, **k: state  # nothing downloads
    try:
        model = pfi.InceptionV3(**kwargs).eval()
    finally:
        pfi.load_state_dict_from_url = original
    return model, {k: v.numpy() for k, v in state.items()}


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
