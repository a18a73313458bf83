"""CLIP score's networks: our vision tower vs transformers' CLIPVisionModelWithProjection (tiny random config)."""

import numpy as np
import pytest
import torch
from metrics_refs import rel_err

TINY = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=32,
    patch_size=8,
    projection_dim=16,
)


def test_image_embeds_match_transformers(tmp_path):
    import transformers

    from emu_jax.convert.clip_vision import from_transformers_clip_vision
    from emu_jax.metrics import clip_vision

    torch.manual_seed(0)
    model = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**TINY)).eval()
    model.save_pretrained(tmp_path, safe_serialization=True)
    cfg, params = from_transformers_clip_vision(str(tmp_path))
    assert cfg == clip_vision.CLIPVisionConfig(**TINY)
    pixels = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        want = model(pixel_values=torch.from_numpy(pixels).permute(0, 3, 1, 2)).image_embeds.numpy()
    got = clip_vision.CLIPVisionTransformer(cfg).apply({"params": params}, pixels)
    assert rel_err(got, want) <= 1e-4, rel_err(got, want)


@pytest.mark.slow
def test_clip_model_folder_gives_matching_text_and_image_embeds(tmp_path):
    import transformers

    from emu_jax.convert.clip_vision import from_transformers_clip_model
    from emu_jax.metrics import clip_vision
    from emu_jax.models.text import pooled_text

    torch.manual_seed(1)
    config = transformers.CLIPConfig(
        text_config=dict(
            vocab_size=99,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=16,
            bos_token_id=0,
            pad_token_id=1,
            eos_token_id=98,
        ),
        vision_config=TINY,
        projection_dim=16,
    )
    model = transformers.CLIPModel(config).eval()
    model.save_pretrained(tmp_path, safe_serialization=True)
    text_cfg, text_params, vision_cfg, vision_params = from_transformers_clip_model(str(tmp_path))
    ids = np.array([[0, 5, 7, 98, 1, 1], [0, 9, 98, 1, 1, 1]], np.int32)
    pixels = np.random.default_rng(1).normal(size=(1, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids).long(), pixel_values=torch.from_numpy(pixels).permute(0, 3, 1, 2))
    got_text = pooled_text(text_cfg, text_params, ids)
    got_image = clip_vision.CLIPVisionTransformer(vision_cfg).apply({"params": vision_params}, pixels)
    unit = lambda x: np.asarray(x) / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731 CLIPModel normalises
    assert rel_err(unit(got_text), out.text_embeds.numpy()) <= 1e-4
    assert rel_err(unit(got_image), out.image_embeds.numpy()) <= 1e-4


def test_vision_converter_names_a_missing_key(tmp_path):
    import transformers

    from emu_jax.convert.clip_vision import convert_vision_state
    from emu_jax.metrics import clip_vision

    model = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**TINY))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    del state["visual_projection.weight"]
    with pytest.raises(ValueError, match="visual_projection/kernel"):
        convert_vision_state(clip_vision.CLIPVisionConfig(**TINY), state)


def test_preprocess_resizes_short_side_and_normalises():
    from emu_jax.metrics import clip_vision

    white = np.full((1, 40, 80, 3), 255, np.uint8)
    x = np.asarray(clip_vision.preprocess(white, 32))
    assert x.shape == (1, 32, 32, 3)
    want = (1.0 - np.asarray(clip_vision.OPENAI_MEAN)) / np.asarray(clip_vision.OPENAI_STD)
    np.testing.assert_allclose(x[0, 5, 5], want, rtol=1e-5)
