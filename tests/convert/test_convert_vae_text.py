"""Converted diffusers VAE / transformers CLIP and T5 reproduce PyTorch outputs (fp32, rel. L2 <= 1e-4)."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from emu_jax.convert.text import from_transformers_clip, from_transformers_t5  # noqa: E402
from emu_jax.convert.vae import from_diffusers_vae  # noqa: E402
from emu_jax.models import autoencoder as ae  # noqa: E402
from emu_jax.models import text  # noqa: E402

TOL = 1e-4


def rel_err(ours, ref) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    torch.manual_seed(0)
    m = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=8,
        norm_num_groups=4,
        sample_size=16,
        scaling_factor=0.3,
        shift_factor=0.05,
    ).eval()
    path = tmp_path_factory.mktemp("vae")
    m.save_pretrained(str(path))
    return m, str(path)


def test_vae_encode_decode_parity(vae_dir):
    model, path = vae_dir
    cfg, params = from_diffusers_vae(path)
    assert cfg.latent_channels == 8 and cfg.scaling_factor == pytest.approx(0.3)
    assert cfg.shift_factor == pytest.approx(0.05)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        post = model.encode(x).latent_dist
        dec = model.decode(post.mean).sample
    ours = ae.encode(cfg, params, jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))
    e_mean = rel_err(np.asarray(ours.mean).transpose(0, 3, 1, 2), post.mean.numpy())
    e_logvar = rel_err(np.asarray(ours.logvar).transpose(0, 3, 1, 2), post.logvar.numpy())
    out = ae.decode(cfg, params, jnp.asarray(post.mean.numpy().transpose(0, 2, 3, 1)))
    e_dec = rel_err(np.asarray(out).transpose(0, 3, 1, 2), dec.numpy())
    print(f"VAE rel L2: mean {e_mean:.2e} logvar {e_logvar:.2e} decode {e_dec:.2e}")
    assert e_mean < TOL and e_logvar < TOL and e_dec < TOL


def test_vae_bad_checkpoints(vae_dir, tmp_path):
    _, path = vae_dir
    (tmp_path / "config.json").write_text(open(f"{path}/config.json").read())
    with pytest.raises(FileNotFoundError, match=r"no weights in .*expected one of .*diffusion_pytorch_model"):
        from_diffusers_vae(str(tmp_path))
    from safetensors.numpy import load_file, save_file

    state = load_file(f"{path}/diffusion_pytorch_model.safetensors")
    state["encoder.extra.weight"] = np.zeros(3, np.float32)
    state.pop("decoder.conv_in.bias")
    state["encoder.conv_in.weight"] = np.zeros((8, 3, 5, 5), np.float32)
    save_file(state, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ValueError) as e:
        from_diffusers_vae(str(tmp_path))
    msg = str(e.value)
    assert "encoder.extra.weight" in msg and "decoder/conv_in/bias" in msg and "encoder.conv_in.weight" in msg


IDS = np.array([[49, 5, 9, 17, 40, 99, 0, 0], [49, 3, 4, 8, 99, 0, 0, 0]])
MASK = np.array([[1] * 6 + [0] * 2, [1] * 5 + [0] * 3])


@pytest.mark.parametrize("eos,act,proj", [(2, "quick_gelu", False), (99, "gelu", True)])
def test_clip_parity(tmp_path, eos, act, proj):
    torch.manual_seed(1)
    c = transformers.CLIPTextConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=16,
        eos_token_id=eos,
        bos_token_id=49,
        pad_token_id=0,
        hidden_act=act,
        projection_dim=8,
    )
    cls = transformers.CLIPTextModelWithProjection if proj else transformers.CLIPTextModel
    m = cls(c).eval()
    m.save_pretrained(str(tmp_path))
    cfg, params = from_transformers_clip(str(tmp_path))
    assert cfg.projection_dim == (8 if proj else 0)
    with torch.no_grad():
        o = m(input_ids=torch.tensor(IDS), attention_mask=torch.tensor(MASK))
    pooled_ref = (o.text_embeds if proj else o.pooler_output).numpy()
    h = text.encode_text(cfg, params, jnp.asarray(IDS), jnp.asarray(MASK, bool))
    p = text.pooled_text(cfg, params, jnp.asarray(IDS), jnp.asarray(MASK, bool))
    e_h, e_p = rel_err(h, o.last_hidden_state.numpy()), rel_err(p, pooled_ref)
    print(f"CLIP(eos={eos}, {act}, proj={proj}) rel L2: hidden {e_h:.2e} pooled {e_p:.2e}")
    assert e_h < TOL and e_p < TOL


@pytest.mark.parametrize("ff", ["gated-gelu", "relu"])
def test_t5_parity_with_padding(tmp_path, ff):
    torch.manual_seed(2)
    c = transformers.T5Config(
        vocab_size=100,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        feed_forward_proj=ff,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
    )
    m = transformers.T5EncoderModel(c).eval()
    m.save_pretrained(str(tmp_path))
    cfg, params = from_transformers_t5(str(tmp_path))
    ids = torch.randint(0, 100, (2, 24))
    mask = torch.ones(2, 24, dtype=torch.long)
    mask[1, 10:] = 0  # a padded row; 24 tokens exceed max_distance so log buckets are used
    with torch.no_grad():
        ref = m(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
    h = text.encode_text(cfg, params, jnp.asarray(ids.numpy()), jnp.asarray(mask.numpy(), bool))
    err = rel_err(h, ref)
    print(f"T5({ff}) rel L2: hidden {err:.2e}")
    assert err < TOL


def test_sharded_checkpoint_and_missing_key(tmp_path):
    torch.manual_seed(3)
    c = transformers.T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    m = transformers.T5EncoderModel(c).eval()
    m.save_pretrained(str(tmp_path / "sharded"), max_shard_size="20KB")
    assert any(p.name.endswith(".index.json") for p in (tmp_path / "sharded").iterdir())
    cfg, params = from_transformers_t5(str(tmp_path / "sharded"))
    with torch.no_grad():
        ref = m(input_ids=torch.tensor(IDS)).last_hidden_state.numpy()
    assert rel_err(text.encode_text(cfg, params, jnp.asarray(IDS)), ref) < TOL
    # Drop one tensor from an index: the converter names it.
    idx_path = next(p for p in (tmp_path / "sharded").iterdir() if p.name.endswith(".index.json"))
    idx = json.loads(idx_path.read_text())
    from safetensors.numpy import load_file, save_file

    shard = tmp_path / "sharded" / idx["weight_map"]["encoder.final_layer_norm.weight"]
    state = load_file(str(shard))
    state.pop("encoder.final_layer_norm.weight")
    save_file(state, str(shard), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="encoder/final_layer_norm/scale"):
        from_transformers_t5(str(tmp_path / "sharded"))
