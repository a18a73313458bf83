"""Reference networks for the metric parity tests: pytorch-fid's own InceptionV3 with random weights."""

from __future__ import annotations

import numpy as np
import torch
import torchvision_stub


def calibrate(model: torch.nn.Module, example: torch.Tensor, seed: int = 0, scale: bool = True) -> None:
    """Data-dependent BN statistics, then random BN affine terms.

    With plain random weights the ~100-layer networks forget their input (the
    features of any two images agree to 1e-9), so a parity test could not
    see a wrong layout. Running statistics measured on `example` keep every
    layer normalised; random scales / offsets stop a swapped leaf hiding.
    """
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: running stats = this batch's statistics
    model.train()
    with torch.no_grad():
        model(example)
        for m in norms:
            if scale:
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
            m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
    model.eval()


def pytorch_fid_inception(seed: int = 0, size: int = 75, **kwargs):
    """`pytorch_fid.inception.InceptionV3(**kwargs)` whose FID weights are random instead of downloaded,
    BN statistics calibrated on random images of `size` px.

    Returns (model in eval mode, its Inception3 state dict: what the real .pth file would hold).
    """
    torchvision_stub.install()
    import pytorch_fid.inception as pfi

    torch.manual_seed(seed)
    state = torchvision_stub.Inception3(num_classes=1008, aux_logits=False).state_dict()
    built = []
    original_url, original_build = pfi.load_state_dict_from_url, pfi.fid_inception_v3
    pfi.load_state_dict_from_url = lambda *a, **k: state  # nothing downloads
    pfi.fid_inception_v3 = lambda: built.append(original_build()) or built[-1]  # keep it for its state dict
    try:
        model = pfi.InceptionV3(**kwargs)
    finally:
        pfi.load_state_dict_from_url, pfi.fid_inception_v3 = original_url, original_build
    example = torch.rand(8, 3, size, size, generator=torch.Generator().manual_seed(seed))
    calibrate(model, example, seed)
    return model, {k: v.numpy() for k, v in built[0].state_dict().items()}


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))
