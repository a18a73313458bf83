"""Fréchet distance between Gaussian fits of two feature sets (FID, FVD), in float64 on the host.

Matches pytorch-fid's `calculate_frechet_distance` (the same formula is used
by the StyleGAN-V FVD code): ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)),
with an eps * I retry when the product is singular. Where pytorch-fid would
raise ("Imaginary component": sqrtm fails on the rank-deficient covariances
of sets smaller than the feature dimension), we warn and take the trace from
the eigenvalues of the symmetric form sqrt(S1) S2 sqrt(S1) instead, which
are real and >= 0 and give the same trace; use >= D samples for numbers
comparable with published ones.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


def gaussian_stats(features_ND) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (np.cov, rowvar=False) in float64, as pytorch-fid."""
    f = np.asarray(features_ND, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need (N >= 2, D) features for a covariance, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"feature statistics differ in shape: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():  # near-singular product: regularise as pytorch-fid does
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean) and not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
        warnings.warn(
            f"sqrtm of the covariance product has an imaginary component "
            f"{np.max(np.abs(covmean.imag)):.3g} (too few samples for {sigma1.shape[0]} dims?); "
            "using the symmetric eigenvalue form",
            RuntimeWarning,
            stacklevel=2,
        )
        tr_covmean = trace_sqrt_product(sigma1, sigma2)
    else:
        tr_covmean = np.trace(covmean.real)
    return _distance(diff, sigma1, sigma2, tr_covmean)


def _distance(diff, sigma1, sigma2, tr_covmean) -> float:
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def frechet_distance_symmetric(mu1, sigma1, mu2, sigma2) -> float:
    """The same distance always through the symmetric eigenvalue form: no sqrtm, no warning on the
    rank-deficient covariances of small sets; for the thousands of bootstrap resamples of `emu-video ablate`."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    return _distance(mu1 - mu2, sigma1, sigma2, trace_sqrt_product(sigma1, sigma2))


def trace_sqrt_product(sigma1, sigma2) -> float:
    """tr sqrtm(S1 S2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1))): a similar, symmetric PSD matrix."""
    w, v = np.linalg.eigh(sigma1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    eig = np.linalg.eigvalsh(root @ sigma2 @ root)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def frechet_distance_of(features_a, features_b) -> float:
    """Fréchet distance between two (N, D) feature arrays."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))
