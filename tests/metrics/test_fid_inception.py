"""FID: our Flax InceptionV3 + converter vs pytorch-fid's own InceptionV3 (random weights), and the distance."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from metrics_refs import pytorch_fid_inception, rel_err


@pytest.fixture(scope="module")
def reference():
    return pytorch_fid_inception(seed=0, resize_input=False)


@pytest.mark.slow  # ~30 s here: mostly XLA compiling the 94-conv network
def test_pool3_features_match_pytorch_fid(reference):
    from emu_jax.convert.inception import convert_state
    from emu_jax.metrics import inception

    model, state = reference
    images = np.random.default_rng(0).integers(0, 256, (2, 75, 75, 3), dtype=np.uint8)
    with torch.no_grad():
        want = model(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0)[0][:, :, 0, 0].numpy()
    got = np.asarray(inception.features(convert_state(state), images, resize=False))
    assert got.shape == (2, 2048)
    assert rel_err(got, want) <= 1e-4, rel_err(got, want)


def test_converter_names_a_missing_key(reference):
    from emu_jax.convert.inception import convert_state

    _, state = reference
    state = dict(state)
    del state["Mixed_7c.branch_pool.bn.running_var"]
    with pytest.raises(ValueError, match="Mixed_7c/branch_pool/bn/var"):
        convert_state(state)


@pytest.mark.parametrize("size", [64, 480])  # up- and down-sampling to 299
def test_preprocess_matches_pytorch_fid_resize_and_scale(size):
    from emu_jax.metrics import inception

    images = np.random.default_rng(size).integers(0, 256, (1, size, size + 8, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    want = 2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1  # pytorch-fid forward
    got = np.asarray(inception.preprocess(images)).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, want.numpy(), atol=2e-6)


def test_frechet_distance_matches_pytorch_fid():
    import torchvision_stub

    torchvision_stub.install()
    from pytorch_fid.fid_score import calculate_frechet_distance

    from emu_jax.metrics.frechet import frechet_distance, frechet_distance_symmetric, gaussian_stats

    rng = np.random.default_rng(0)
    a = rng.normal(size=(64, 16))
    b = rng.normal(0.3, 1.2, size=(80, 16)) @ rng.normal(size=(16, 16)) * 0.5
    mu1, s1 = gaussian_stats(a)
    mu2, s2 = gaussian_stats(b)
    np.testing.assert_allclose(s1, np.cov(a, rowvar=False))
    want = calculate_frechet_distance(mu1, s1, mu2, s2)
    got = frechet_distance(mu1, s1, mu2, s2)
    assert want > 1.0
    assert abs(got - want) <= 1e-6 * abs(want), (got, want)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-8
    # The sqrtm-free form `emu-video ablate` bootstraps with is the same distance.
    assert abs(frechet_distance_symmetric(mu1, s1, mu2, s2) - want) <= 1e-6 * abs(want)


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::scipy.linalg.LinAlgWarning")
def test_frechet_distance_of_small_rank_deficient_sets():
    from emu_jax.metrics.frechet import frechet_distance, gaussian_stats, trace_sqrt_product

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 64)) * 50 + 100, rng.normal(size=(3, 64)) * 50 + 90  # N < D, as FID with few frames
    s_a = gaussian_stats(a)[1]
    full_a = gaussian_stats(rng.normal(size=(200, 64)))[1]
    assert trace_sqrt_product(full_a, full_a) == pytest.approx(np.trace(full_a), rel=1e-9)
    assert trace_sqrt_product(s_a, s_a) == pytest.approx(np.trace(s_a), rel=1e-6)  # sqrt of ~0 eigenvalues
    assert abs(frechet_distance(*gaussian_stats(a), *gaussian_stats(a))) < 1e-6 * np.trace(s_a)
    (mu_a, s_a), (mu_b, s_b) = gaussian_stats(a), gaussian_stats(b)
    want = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * trace_sqrt_product(s_a, s_b)
    assert frechet_distance(mu_a, s_a, mu_b, s_b) == pytest.approx(want, rel=1e-6)
