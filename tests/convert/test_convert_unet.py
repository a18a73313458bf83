"""diffusers UNet2DConditionModel -> our UNet: numerical parity, identity temporal init, key checking."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from emu_jax.convert import from_diffusers_unet  # noqa: E402
from emu_jax.convert.common import load_safetensors_dir  # noqa: E402
from emu_jax.convert.unet import config_from_diffusers, convert_unet_state_dict  # noqa: E402
from emu_jax.models import UNet  # noqa: E402
from emu_jax.models.unet import abstract_params  # noqa: E402

VARIANTS = {
    # SD 1.x style: conv1x1 proj_in/out, one head count everywhere, one transformer layer.
    "sd1": dict(layers_per_block=1, attention_head_dim=4, use_linear_projection=False, transformer_layers_per_block=1),
    # SD 2.x style: linear proj_in/out, per-block head counts, per-level res blocks, 2 transformer layers.
    "sd2": dict(
        layers_per_block=(1, 2, 1),
        attention_head_dim=[2, 4, 4],
        use_linear_projection=True,
        transformer_layers_per_block=2,
    ),
}


def build_diffusers_unet(variant: str):
    torch.manual_seed(0)
    model = diffusers.UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=24,
        norm_num_groups=8,
        **VARIANTS[variant],
    ).eval()
    with torch.no_grad():  # norms start at 1/0: perturb them so a scale/bias mix-up would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _convert(variant, tmp_path_factory):
    model = build_diffusers_unet(variant)
    path = str(tmp_path_factory.mktemp(f"unet_{variant}"))
    model.save_pretrained(path)
    config, params = from_diffusers_unet(path, cond_channels=5)
    return variant, model, path, config, params


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return _convert("sd1", tmp_path_factory)


@pytest.fixture(scope="module")
def converted_sd2(tmp_path_factory):
    return _convert("sd2", tmp_path_factory)


@pytest.mark.slow  # runs the PyTorch twin and the converted U-Net (~60 s each on busy cores)
@pytest.mark.parametrize("fixture", ["converted", "converted_sd2"])
def test_parity_with_diffusers_and_identity_init(fixture, request):
    variant, model, _, config, params = request.getfixturevalue(fixture)
    b, t_frames = 2, 3
    rng = np.random.default_rng(0)
    x = rng.normal(size=(b, t_frames, 16, 16, 4)).astype(np.float32)
    t = np.array([3, 700])
    ctx = rng.normal(size=(b, 7, 24)).astype(np.float32)
    with torch.no_grad():  # diffusers on all B*T frames as one image batch
        ref = model(
            torch.from_numpy(x.reshape(b * t_frames, 16, 16, 4).transpose(0, 3, 1, 2)),
            torch.from_numpy(np.repeat(t, t_frames)),
            torch.from_numpy(np.repeat(ctx, t_frames, axis=0)),
        ).sample.numpy()
    ref = ref.transpose(0, 2, 3, 1).reshape(b, t_frames, 16, 16, 4)

    fwd = jax.jit(lambda p, *a, **k: UNet(config).apply({"params": p}, *a, **k), static_argnames=("image_mode",))
    image = np.asarray(fwd(params, jnp.asarray(x), jnp.asarray(t), (jnp.asarray(ctx),), image_mode=True))
    rel = np.linalg.norm(image - ref) / np.linalg.norm(ref)
    print(f"[{variant}] image-mode parity vs diffusers (T={t_frames}): relative L2 error {rel:.2e}")
    assert rel <= 1e-4

    if variant != "sd1":
        return  # identity init is a property of our temporal layers: one variant shows it after conversion
    video = np.asarray(
        fwd(params, jnp.asarray(x), jnp.asarray(t), (jnp.asarray(ctx),), cond=jnp.zeros((b, t_frames, 16, 16, 5)))
    )
    rel_v = np.linalg.norm(video - image) / np.linalg.norm(image)
    print(f"[{variant}] video mode (identity temporal init) vs image mode: relative L2 error {rel_v:.2e}")
    assert rel_v <= 1e-5


def test_sharded_checkpoint_and_overrides(converted, tmp_path):
    _, model, path, config, params = converted
    model.save_pretrained(str(tmp_path), max_shard_size="100KB")
    assert any(n.endswith(".index.json") for n in os.listdir(tmp_path))
    config2, params2 = from_diffusers_unet(str(tmp_path), cond_channels=5)
    assert config2 == config
    for a, b in zip(jax.tree.leaves(params2), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    # Overrides reach the config; temporal=False builds no temporal params (checked without memory).
    with open(os.path.join(path, "config.json")) as f:
        config3 = config_from_diffusers(json.load(f), cond_channels=5, temporal=False, remat="full")
    assert config3 == config.replace(temporal=False, remat="full")
    names = {jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(abstract_params(config3))[0]}
    assert names and not any("temporal_" in n for n in names)


def test_key_problems_are_named(converted):
    _, _, path, config, _ = converted
    state = load_safetensors_dir(path)
    missing = dict(state)
    del missing["mid_block.resnets.0.conv1.weight"]
    with pytest.raises(ValueError, match=r"mid_block/resnets_0/conv1/kernel"):
        convert_unet_state_dict(missing, config)
    extra = dict(state, **{"add_embedding.linear_1.weight": np.zeros((4, 4), np.float32)})
    with pytest.raises(ValueError, match=r"add_embedding.linear_1.weight"):
        convert_unet_state_dict(extra, config)
    bad = dict(state, **{"conv_in.weight": np.zeros((32, 5, 3, 3), np.float32)})
    with pytest.raises(ValueError, match=r"shape mismatches.*conv_in.weight"):
        convert_unet_state_dict(bad, config)


def test_unsupported_diffusers_configs_are_named(converted):
    _, _, path, _, _ = converted
    with open(os.path.join(path, "config.json")) as f:
        d = json.load(f)
    for field, value in (
        ("class_embed_type", "timestep"),
        ("resnet_time_scale_shift", "scale_shift"),
        ("mid_block_type", "UNetMidBlock2DSimpleCrossAttn"),
    ):
        with pytest.raises(ValueError, match=field):
            config_from_diffusers(dict(d, **{field: value}))
    with pytest.raises(ValueError, match="block types"):
        config_from_diffusers(dict(d, down_block_types=["SimpleCrossAttnDownBlock2D"] * 3))
    with pytest.raises(FileNotFoundError):
        from_diffusers_unet(os.path.join(path, "does_not_exist"))


def test_load_safetensors_upcasts_half_precision_and_names_bad_paths(tmp_path):
    from safetensors.torch import save_file

    save_file(
        {"w": torch.randn(3, 2).to(torch.bfloat16), "h": torch.randn(2).half(), "i": torch.arange(3)},
        str(tmp_path / "model.safetensors"),
    )
    state = load_safetensors_dir(str(tmp_path))
    assert state["w"].dtype == np.float32 and state["h"].dtype == np.float32 and state["i"].dtype == np.int64
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(FileNotFoundError, match="index"):
        load_safetensors_dir(str(tmp_path))  # two files, no index naming the shards
    with pytest.raises(FileNotFoundError, match="no .safetensors"):
        load_safetensors_dir(str(tmp_path.parent))
