"""The Emu Video model bundle: U-Net + autoencoder + text encoders under one params tree.

Training and sampling both go through `EmuModel`, so there is one definition
of how pixels become latents, how captions become contexts (including the
empty prompt that classifier-free guidance drops to) and how the U-Net is
called. Params: `{"unet": ..., "vae": ..., "text": {"0": ..., "1": ...}}`,
each the inner Linen tree (no "params" wrapper). `EmuConfig.to_dict()` is what
a checkpoint's `emu_jax.json` stores.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax.core import meta

from emu_jax.models import autoencoder as vae_lib
from emu_jax.models import text as text_lib
from emu_jax.models import vae_video
from emu_jax.models.unet import UNet
from emu_jax.models.unet import init_params as unet_init
from emu_jax.models.unet_config import UNetConfig


@dataclasses.dataclass(frozen=True)
class TextEncoderSpec:
    kind: str  # 'clip' | 't5'
    config: text_lib.TextConfig
    max_length: int = 77
    tokenizer: str = "byte"  # a built-in name ('byte') or a folder (relative to the checkpoint)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "config": self.config.to_dict(),
            "max_length": self.max_length,
            "tokenizer": self.tokenizer,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TextEncoderSpec":
        return cls(
            kind=d["kind"],
            config=text_lib.config_from_dict(d["kind"], dict(d["config"])),
            max_length=int(d.get("max_length", 77)),
            tokenizer=str(d.get("tokenizer", "byte")),
        )


@dataclasses.dataclass(frozen=True)
class EmuConfig:
    """A whole model: what the U-Net, VAE and text encoders are, and the video shape it makes."""

    unet: UNetConfig
    vae: vae_lib.VAEConfig
    text: tuple[TextEncoderSpec, ...]
    resolution: int = 32  # pixels (square)
    num_frames: int = 8  # frames of F's video
    fps: int = 4  # frame rate of F's video

    def __post_init__(self):
        if len(self.text) != len(self.unet.context_dims):
            raise ValueError(
                f"{len(self.text)} text encoders but the U-Net expects "
                f"{len(self.unet.context_dims)} contexts {self.unet.context_dims}"
            )
        for i, (spec, dim) in enumerate(zip(self.text, self.unet.context_dims)):
            if spec.config.width != dim:
                raise ValueError(
                    f"text encoder {i} ({spec.kind}) has width {spec.config.width} but "
                    f"the U-Net's context_dims[{i}] is {dim}"
                )
        if self.vae.latent_channels != self.unet.in_channels:
            raise ValueError(
                f"VAE latent_channels {self.vae.latent_channels} != U-Net in_channels {self.unet.in_channels}"
            )
        f = self.vae.downsample_factor * 2 ** (self.unet.num_levels - 1)
        if self.resolution % f:
            raise ValueError(f"resolution {self.resolution} must be divisible by {f} (VAE downsampling x U-Net levels)")

    @property
    def latent_size(self) -> int:
        return self.resolution // self.vae.downsample_factor

    def to_dict(self) -> dict:
        return {
            "unet": self.unet.to_dict(),
            "vae": self.vae.to_dict(),
            "text_encoders": [t.to_dict() for t in self.text],
            "resolution": self.resolution,
            "num_frames": self.num_frames,
            "fps": self.fps,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EmuConfig":
        return cls(
            unet=UNetConfig.from_dict(dict(d["unet"])),
            vae=vae_lib.VAEConfig.from_dict(dict(d["vae"])),
            text=tuple(TextEncoderSpec.from_dict(t) for t in d["text_encoders"]),
            resolution=int(d.get("resolution", 32)),
            num_frames=int(d.get("num_frames", 8)),
            fps=int(d.get("fps", 4)),
        )


def _inner(tree: Any) -> Any:
    tree = meta.unbox(tree)
    return tree["params"] if isinstance(tree, Mapping) and set(tree) == {"params"} else tree


def load_tokenizer(spec: TextEncoderSpec, root: str | pathlib.Path | None = None):
    from emu_jax.models import tokenizers

    if spec.tokenizer in tokenizers.BUILTIN:
        return tokenizers.load_tokenizer(spec.tokenizer)
    path = pathlib.Path(spec.tokenizer)
    if not path.is_absolute() and root is not None:
        path = pathlib.Path(root) / path
    return tokenizers.load_tokenizer(path)


class EmuModel:
    """Pure functions of (params, inputs) for every part of Emu Video."""

    def __init__(
        self, config: EmuConfig, tokenizers: Sequence[Any] | None = None, root: str | pathlib.Path | None = None
    ):
        self.config = config
        self.unet = UNet(config.unet)
        self.tokenizers = (
            tuple(tokenizers) if tokenizers is not None else tuple(load_tokenizer(s, root) for s in config.text)
        )
        # The empty prompt: what dropped text (training) and the unconditional branch (sampling) see.
        self.null_tokens = tuple(self.tokenize([""], i) for i in range(len(config.text)))

    # ---- parameters --------------------------------------------------------------------
    def init(self, rng: jax.Array) -> dict:
        """Fresh params (unboxed); temporal layers start at identity, conditioning at zero."""
        r_unet, r_vae, r_text = jax.random.split(rng, 3)
        cfg = self.config
        return {
            "unet": unet_init(cfg.unet, r_unet),
            "vae": _inner(vae_lib.init_params(cfg.vae, r_vae)),
            "text": {
                str(i): _inner(
                    text_lib.init_params(s.config, jax.random.fold_in(r_text, i), length=min(s.max_length, 8))
                )
                for i, s in enumerate(cfg.text)
            },
        }

    def abstract_params(self) -> dict:
        """Boxed abstract params (logical names, no memory): the input of `params_shardings`."""
        from emu_jax.models.unet import abstract_params as unet_abstract

        cfg = self.config

        def boxed(init_fn):
            tree = jax.eval_shape(init_fn, jax.random.key(0))
            return tree["params"] if set(tree) == {"params"} else tree

        s = 2 * cfg.vae.downsample_factor
        return {
            "unet": unet_abstract(cfg.unet),
            "vae": boxed(lambda k: vae_lib.AutoencoderKL(cfg.vae).init(k, jnp.zeros((1, s, s, cfg.vae.in_channels)))),
            "text": {
                str(i): boxed(
                    lambda k, sp=sp: text_lib.build_module(sp.config).init(
                        k, jnp.zeros((1, 8), jnp.int32), jnp.ones((1, 8), bool)
                    )
                )
                for i, sp in enumerate(cfg.text)
            },
        }

    # ---- text ----------------------------------------------------------------------------
    def tokenize(self, prompts: Sequence[str], index: int) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and mask (B, L) for encoder `index`, padded to its max_length."""
        batch = self.tokenizers[index](list(prompts), self.config.text[index].max_length)
        return np.asarray(batch.ids, np.int32), np.asarray(batch.mask, bool)

    def tokenize_all(self, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        out = {}
        for i in range(len(self.config.text)):
            out[f"text_ids_{i}"], out[f"text_mask_{i}"] = self.tokenize(prompts, i)
        return out

    def encode_text(self, params: dict, ids: jax.Array, mask: jax.Array, index: int) -> jax.Array:
        spec = self.config.text[index]
        return text_lib.encode_text(spec.config, {"params": params["text"][str(index)]}, ids, mask)

    def batch_contexts(
        self, params: dict, batch: Mapping[str, jax.Array], keep_text: jax.Array | None = None
    ) -> tuple[tuple, tuple]:
        """Contexts (B, L_i, D_i) and masks from `text_ids_i`/`text_mask_i` (or cached
        `context_i`/`context_mask_i`); rows with keep_text False get the empty prompt."""
        contexts, masks = [], []
        for i in range(len(self.config.text)):
            null_ids, null_mask = (jnp.asarray(a) for a in self.null_tokens[i])
            if f"context_{i}" in batch:
                ctx, m = batch[f"context_{i}"], batch[f"context_mask_{i}"]
                if keep_text is not None:
                    null = self.encode_text(params, null_ids, null_mask, i)
                    ctx = jnp.where(keep_text[:, None, None], ctx, null.astype(ctx.dtype))
                    m = jnp.where(keep_text[:, None], m, null_mask)
            else:
                ids, m = batch[f"text_ids_{i}"], batch[f"text_mask_{i}"]
                if keep_text is not None:
                    ids = jnp.where(keep_text[:, None], ids, null_ids)
                    m = jnp.where(keep_text[:, None], m, null_mask)
                ctx = self.encode_text(params, ids, m, i)
            contexts.append(ctx)
            masks.append(m.astype(bool))
        return tuple(contexts), tuple(masks)

    # ---- pixels <-> latents ----------------------------------------------------------------
    def encode_video(self, params: dict, video_BTHWC: jax.Array, rng: jax.Array | None = None) -> jax.Array:
        return vae_video.encode_video(self.config.vae, {"params": params["vae"]}, video_BTHWC, rng)

    def decode_video(self, params: dict, latents_BTHWC: jax.Array, chunk: int = 8) -> jax.Array:
        return vae_video.decode_video(self.config.vae, {"params": params["vae"]}, latents_BTHWC, chunk)

    def batch_latents(self, params: dict, batch: Mapping[str, jax.Array], rng: jax.Array) -> jax.Array:
        """Diffusion latents of a batch: cached `latents`, or the frozen VAE's sample of `video`."""
        if "latents" in batch:
            return batch["latents"]
        return jax.lax.stop_gradient(self.encode_video(params, batch["video"], rng))

    # ---- the denoiser --------------------------------------------------------------------
    def denoise(
        self,
        params: dict,
        x: jax.Array,
        t: jax.Array,
        contexts: Sequence[jax.Array],
        *,
        cond: jax.Array | None = None,
        image_mode: bool = False,
        cond_level: jax.Array | None = None,
        context_masks: Sequence[jax.Array] | None = None,
    ) -> jax.Array:
        return self.unet.apply(
            {"params": params["unet"]},
            x,
            t,
            tuple(contexts),
            cond=cond,
            image_mode=image_mode,
            cond_level=cond_level,
            context_masks=context_masks,
        )
