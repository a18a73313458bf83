"""`emu-video convert`: a tiny random diffusers pipeline -> emu_jax checkpoint that reproduces PyTorch."""

import json
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from emu_jax import model_folder  # noqa: E402
from emu_jax.models import text as text_lib  # noqa: E402
from emu_jax.models import vae_video  # noqa: E402
from emu_jax.models.emu import EmuConfig, load_tokenizer  # noqa: E402
from emu_jax.models.unet import UNet  # noqa: E402
from emu_test_utils import write_clip_tokenizer  # noqa: E402

TOL = 1e-4
PROMPTS = ["the cat", "a dog ate the cat"]


def rel_err(ours, ref) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd")
    vocab_size = len(write_clip_tokenizer(root / "vocab"))
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(root / "vocab"), model_max_length=16)
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=2,
        norm_num_groups=8,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
    )
    text = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
            bos_token_id=vocab_size - 2,
            eos_token_id=vocab_size - 1,
            pad_token_id=1,
        )
    )
    pipe = diffusers.StableDiffusionPipeline(
        unet=unet.eval(),
        vae=vae.eval(),
        text_encoder=text.eval(),
        tokenizer=tokenizer,
        scheduler=diffusers.DDIMScheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    src = root / "pipeline"
    pipe.save_pretrained(str(src), safe_serialization=True)
    return pipe, str(src), root


@pytest.fixture(scope="module")
def converted(pipeline_dir):
    from emu_jax.cli import main

    _, src, root = pipeline_dir
    out = str(root / "converted")
    assert main(["convert", "--from-diffusers", src, "--out", out]) == 0
    return out


@pytest.mark.slow
def test_converted_checkpoint_reproduces_pytorch(pipeline_dir, converted):
    pipe, _, _ = pipeline_dir
    meta, params = model_folder.load_checkpoint(converted)
    assert meta["format"] == "emu_jax" and meta["text_encoders"][0]["kind"] == "clip"
    assert {"tokenizer.json", "vocab.json"} & set(os.listdir(os.path.join(converted, "tokenizer")))
    cfg = EmuConfig.from_dict(meta)
    assert cfg.unet.cond_channels == 5 and cfg.unet.temporal and cfg.resolution == 16
    assert cfg.text[0].max_length == 16

    # Tokenizer from the copied files == the pipeline's tokenizer.
    tok = load_tokenizer(cfg.text[0], root=converted)
    batch = tok(PROMPTS, cfg.text[0].max_length)
    ref_ids = pipe.tokenizer(PROMPTS, padding="max_length", max_length=16, truncation=True).input_ids
    assert batch.ids.tolist() == ref_ids

    # Text encoder.
    with torch.no_grad():
        ctx_ref = pipe.text_encoder(
            torch.tensor(batch.ids, dtype=torch.long), attention_mask=torch.tensor(batch.mask, dtype=torch.long)
        )[0]
    ctx = text_lib.encode_text(
        cfg.text[0].config, {"params": params["text"]["0"]}, jnp.asarray(batch.ids), jnp.asarray(batch.mask)
    )
    e_text = rel_err(ctx, ctx_ref.numpy())

    # U-Net in image mode (temporal layers off, no conditioning) == the diffusers U-Net.
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        eps_ref = pipe.unet(x, torch.tensor([10, 500]), encoder_hidden_states=ctx_ref).sample
    eps = UNet(cfg.unet).apply(
        {"params": params["unet"]},
        jnp.asarray(x.numpy().transpose(0, 2, 3, 1))[:, None],
        jnp.array([10, 500]),
        (jnp.asarray(ctx_ref.numpy()),),
        image_mode=True,
    )
    e_unet = rel_err(np.asarray(eps)[:, 0].transpose(0, 3, 1, 2), eps_ref.numpy())

    # VAE decode of scaled latents, as the pipeline does.
    with torch.no_grad():
        img_ref = pipe.vae.decode(x / pipe.vae.config.scaling_factor).sample
    z = jnp.asarray(x.numpy().transpose(0, 2, 3, 1))[:, None]
    img = vae_video.decode_video(cfg.vae, {"params": params["vae"]}, z)
    e_vae = rel_err(np.asarray(img)[:, 0].transpose(0, 3, 1, 2), img_ref.numpy())
    print(f"pipeline rel L2: text {e_text:.2e} unet {e_unet:.2e} vae decode {e_vae:.2e}")
    assert e_text < TOL and e_unet < TOL and e_vae < TOL


def test_cli_refuses_bad_folders(pipeline_dir, converted, tmp_path, capsys):
    from emu_jax.cli import main

    _, src, _ = pipeline_dir
    assert main(["convert", "--from-diffusers", src, "--out", converted]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert main(["convert", "--from-diffusers", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    assert "--from-diffusers" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="not an emu_jax checkpoint: .* has no emu_jax.json"):
        model_folder.load_checkpoint(str(tmp_path))


def test_pipeline_missing_weights_and_foreign_tokenizer(pipeline_dir, tmp_path):
    from emu_jax.convert.pipeline import convert_diffusers_pipeline

    _, src, _ = pipeline_dir
    broken = tmp_path / "broken"
    shutil.copytree(src, broken)
    os.remove(broken / "vae" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(FileNotFoundError, match=r"no weights in .*vae.*diffusion_pytorch_model.safetensors"):
        convert_diffusers_pipeline(str(broken), str(tmp_path / "out1"), log=lambda *_: None)

    foreign = tmp_path / "foreign"
    shutil.copytree(src, foreign)
    shutil.rmtree(foreign / "tokenizer")
    vocab = {chr(0x4E00 + i): i for i in range(300)}  # a 300-token vocabulary for a 60-token model
    os.makedirs(foreign / "tokenizer")
    (foreign / "tokenizer" / "vocab.json").write_text(
        json.dumps({**vocab, "<|startoftext|>": 300, "<|endoftext|>": 301})
    )
    (foreign / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(ValueError, match=r"vocabulary size 302 exceeds the text encoder's vocab_size 60"):
        convert_diffusers_pipeline(str(foreign), str(tmp_path / "out2"), log=lambda *_: None)
    assert not os.path.exists(tmp_path / "out2")  # nothing written before every check passed
