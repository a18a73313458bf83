"""`emu-video data`: build datasets (a folder of videos, or any kind in `emu_jax.data.registry`), select
high-motion videos, cache latents.

Every argument is checked before any video is read or anything compiled.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from emu_jax.data import registry
from emu_jax.errors import UserError, debug_enabled, one_line


def _add_beam_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--beam",
        action="store_true",
        help="run the per-video work as an Apache Beam pipeline (needs the 'beam' extra); "
        "default runner: the DirectRunner in one process per core",
    )
    parser.add_argument(
        "--beam-options",
        default=None,
        metavar="FLAGS",
        help='Beam pipeline flags, e.g. "--runner=DataflowRunner --project=P --region=R '
        '--temp_location=gs://B/tmp" or "--direct_num_workers=2" (implies --beam)',
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    build = sub.add_parser(
        "build",
        help="write a TFDS ArrayRecord dataset",
        description="Write a TFDS dataset (ArrayRecord files) under --data-dir/<name>/1.0.0/.",
    )
    kinds = build.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for kind in registry.kinds().values():
        kind_parser = kinds.add_parser(kind.name, help=kind.help, description=kind.description)
        kind.add_arguments(kind_parser)
        _add_beam_arguments(kind_parser)  # every builder runs its per-item work serially or in Beam

    hq = sub.add_parser(
        "select-hq",
        help="keep high-motion (and optionally high-CLIP / aesthetic) videos",
        description="Scores each video by the minimum over +-WINDOW-frame windows of the mean squared H.264 "
        "motion-vector displacement (pixels of the stored video) and writes the videos above "
        "--motion-threshold to --out (JSON with index/key/scores; give it to training as "
        "data.subset_file). The CLIP and aesthetic thresholds apply ONLY when you supply the "
        "matching score file (JSONL lines {'path': key, 'score': x} or CSV path,score); this "
        "tool computes no CLIP or aesthetic scores itself.",
    )
    hq.add_argument("--data-dir", required=True, help="TFDS data_dir holding the dataset")
    hq.add_argument(
        "--dataset",
        default="video_text_folder",
        help="name of a prepared dataset under --data-dir (default video_text_folder)",
    )
    hq.add_argument("--split", default="train", help="split to score (default train)")
    hq.add_argument("--out", required=True, help="output file (.json; .csv writes index,key,motion rows)")
    hq.add_argument("--motion-threshold", type=float, default=0.5, help="keep motion score > this (default 0.5)")
    hq.add_argument("--window", type=int, default=5, help="half window in frames (default 5)")
    hq.add_argument("--clip-scores", help="optional JSONL/CSV of CLIP(first frame, text) scores by key")
    hq.add_argument("--clip-threshold", type=float, default=0.25, help="keep CLIP score > this (default 0.25)")
    hq.add_argument("--aesthetic-scores", help="optional JSONL/CSV of aesthetic scores by key")
    hq.add_argument("--aesthetic-threshold", type=float, default=5.7, help="keep aesthetic > this (default 5.7)")
    _add_beam_arguments(hq)

    cache = sub.add_parser(
        "cache-latents",
        help="encode clips once with a VAE into a 'latents' dataset",
        description="Encode one clip per video (the centred one, or --clips-per-video random ones) of the "
        "dataset described by --config (a data config, e.g. data/video_folder.py) and write "
        "DATA_DIR/latents/; train on it with data.name=latents.",
    )
    cache.add_argument("--config", required=True, help="data config PATH.py[:ARG]; override with --config.x=v")
    cache.add_argument("--data-dir", required=True, help="TFDS data_dir to write latents into")
    cache.add_argument("--splits", default="train", help="comma-separated splits (default train)")
    cache.add_argument("--vae", help="diffusers AutoencoderKL folder (config.json + safetensors)")
    cache.add_argument(
        "--encoder", help="stand-in encoder 'pool:F' (F x F average pool, for smoke tests) when no --vae is given"
    )
    cache.add_argument(
        "--batch-size", type=int, default=8, help="clips per encoder call, all processes together (default 8)"
    )
    cache.add_argument(
        "--shard-batches", type=int, default=16, help="batches per shard, the unit a killed run resumes at (default 16)"
    )
    cache.add_argument("--clips-per-video", type=int, default=1, help="clips per video (default 1)")
    cache.add_argument("--seed", type=int, default=0, help="clip placement seed (default 0)")
    cache.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() (auto-detected on TPU pods / SLURM; "
        "else set --coordinator, --num-processes, --process-id), as `emu-video train`",
    )
    cache.add_argument("--coordinator", default=None, help="host:port of process 0 (multi-process runs)")
    cache.add_argument("--num-processes", type=int, default=None)
    cache.add_argument("--process-id", type=int, default=None)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)  # its INFO lines drown the skip warnings
    try:
        return {"build": _build, "select-hq": _select_hq, "cache-latents": _cache_latents}[args.data_command](args)
    except UserError as e:  # also caught by emu_jax.cli once every command takes that path; kept for direct calls
        if debug_enabled():
            raise
        print(f"emu-video data {args.data_command}: error: {one_line(e)}", file=sys.stderr)
        return e.exit_code


def _beam_options(args):
    """PipelineOptions when --beam / --beam-options was given, else None; bad flags or no Beam -> UserError."""
    if not (getattr(args, "beam", False) or getattr(args, "beam_options", None)):
        return None
    from emu_jax.data import beam

    return beam.pipeline_options(args.beam_options)  # raises UserError (BeamMissing names the extra)


def _build(args) -> int:
    from emu_jax.data import builders

    options = _beam_options(args)
    try:
        builder = registry.kinds()[args.dataset].make_builder(args)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(one_line(e)) from None
    if builder.is_prepared():
        print(
            f"{builder.name} is already prepared at {builder.data_dir}; nothing rebuilt "
            "(delete that folder or pick another --data-dir to rebuild)"
        )
        return 0
    builders.prepare(builder, beam_options=options)  # too many unusable videos: TooManySkipped, a UserError
    print(
        f"wrote {builder.name} to {builder.data_dir}: "
        + ", ".join(f"{k}={v.num_examples}" for k, v in builder.info.splits.items())
    )
    return 0


def _select_hq(args) -> int:
    from tqdm import tqdm

    from emu_jax.data import motion, pipeline

    if not args.out.endswith((".json", ".csv")):
        raise UserError(f"--out {args.out!r} must end in .json or .csv")
    for path in (args.clip_scores, args.aesthetic_scores):
        if path and not os.path.isfile(path):
            raise UserError(f"score file {path!r} does not exist")
    options = _beam_options(args)
    try:
        clip = motion.read_scores(args.clip_scores) if args.clip_scores else None
        aesthetic = motion.read_scores(args.aesthetic_scores) if args.aesthetic_scores else None
        source = pipeline.open_source(args.dataset, args.data_dir, args.split)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(one_line(e)) from None
    thresholds = dict(
        motion_threshold=args.motion_threshold,
        clip_scores=clip,
        clip_threshold=args.clip_threshold,
        aesthetic_scores=aesthetic,
        aesthetic_threshold=args.aesthetic_threshold,
        window=args.window,
    )
    if options is not None:
        from emu_jax.data import motion_beam

        result = motion_beam.select(
            dataset=args.dataset,
            data_dir=args.data_dir,
            split=args.split,
            num_records=len(source),
            options=options,
            **thresholds,
        )
    else:
        items = (
            (i, r["key"].decode(), r["video"])
            for i, r in ((i, source[i]) for i in tqdm(range(len(source)), desc="motion scores", unit="video"))
        )
        result = motion.select(items, **thresholds)
    result.update(dataset=args.dataset, data_dir=args.data_dir, split=args.split)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        if args.out.endswith(".csv"):
            import csv

            writer = csv.writer(f)
            writer.writerow(["index", "key", "motion"])
            writer.writerows([s["index"], s["key"], s["motion"]] for s in result["selected"])
        else:
            json.dump(result, f, indent=1)
    print(
        f"selected {len(result['selected'])} of {result['total']} videos -> {args.out}; rejected {result['rejected']}"
    )
    return 0


def pool_encoder(factor: int):
    """Stand-in `encode_fn`: F x F spatial average pool of (B, T, H, W, C) pixels (no learned weights)."""

    def encode(video_BTHWC):
        b, t, h, w, c = video_BTHWC.shape
        if h % factor or w % factor:
            raise ValueError(f"frame size {h}x{w} is not divisible by pool factor {factor}")
        return video_BTHWC.reshape(b, t, h // factor, factor, w // factor, factor, c).mean(axis=(3, 5))

    return encode


def _vae_encoder(path: str, batch_size: int):
    """`encode_fn` from a diffusers AutoencoderKL folder via emu_jax's converter (posterior mean), its
    parameters replicated over the devices the batch is sharded over (every process's, when several)."""
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    from emu_jax.convert import vae as convert_vae
    from emu_jax.data import latent_cache
    from emu_jax.models import vae_video

    cfg, params = convert_vae.from_diffusers_vae(path)
    replicated = NamedSharding(latent_cache.batch_sharding(batch_size).mesh, PartitionSpec())

    def replicate(x):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, replicated, lambda index: host[index])

    params = jax.tree.map(replicate, params)
    encode = jax.jit(lambda p, x: vae_video.encode_video(cfg, p, x))
    return lambda video: encode(params, video)


def _cache_latents(args) -> int:
    from emu_jax.config import config_from_args
    from emu_jax.data import latent_cache

    if bool(args.vae) == bool(args.encoder):
        raise UserError("give exactly one of --vae DIR or --encoder pool:F")
    if args.encoder:
        kind, _, factor = args.encoder.partition(":")
        if kind != "pool" or not factor.isdigit() or int(factor) < 1:
            raise UserError(f"--encoder {args.encoder!r}: expected 'pool:F' with F a positive integer")
    elif not os.path.isdir(args.vae):
        raise UserError(f"--vae {args.vae!r} is not a directory")
    if args.batch_size < 1 or args.shard_batches < 1 or args.clips_per_video < 1:
        raise UserError(
            f"--batch-size, --shard-batches and --clips-per-video must be >= 1, got "
            f"{args.batch_size}, {args.shard_batches}, {args.clips_per_video}"
        )
    if args.num_processes and args.batch_size % args.num_processes:
        raise UserError(
            f"--batch-size {args.batch_size} must be a multiple of --num-processes "
            f"{args.num_processes} (each process encodes an equal part of every batch)"
        )
    cfg = config_from_args(args.config, getattr(args, "config_overrides", []))
    cfg = cfg.data if "data" in cfg else cfg
    if args.distributed or args.coordinator:
        from emu_jax.distributed import initialize

        try:
            initialize(args.coordinator, args.num_processes, args.process_id)
        except ValueError as e:
            raise UserError(one_line(e)) from None
    if args.encoder:
        import jax

        encode_fn = jax.jit(pool_encoder(int(args.encoder.partition(":")[2])))
    else:
        encode_fn = _vae_encoder(args.vae, args.batch_size)
    builder = latent_cache.build_latent_cache(
        cfg,
        encode_fn,
        data_dir=args.data_dir,
        splits=tuple(s for s in args.splits.split(",") if s),
        batch_size=args.batch_size,
        clips_per_video=args.clips_per_video,
        seed=args.seed,
        shard_batches=args.shard_batches,
    )
    print(
        f"wrote latents to {builder.data_dir}: "
        + ", ".join(f"{k}={v.num_examples}" for k, v in builder.info.splits.items())
    )
    return 0


def _folder_arguments(folder: argparse.ArgumentParser) -> None:
    folder.add_argument("--videos", required=True, help="folder holding the videos")
    folder.add_argument("--captions", required=True, help="CSV / JSONL captions file")
    folder.add_argument("--data-dir", required=True, help="TFDS data_dir to write into")
    folder.add_argument(
        "--min-clip-seconds", type=float, default=1.0, help="skip videos shorter than this (default 1.0)"
    )
    folder.add_argument(
        "--max-skip-fraction",
        type=float,
        default=0.1,
        help="fail if a larger fraction of rows is skipped (default 0.1)",
    )
    folder.add_argument(
        "--test-fraction",
        type=float,
        default=0.0,
        help="fraction of videos (by hash of path) put in a 'test' split (default 0)",
    )


def _folder_builder(args: argparse.Namespace):
    from emu_jax.data import builders

    return builders.VideoTextFolder(
        videos_dir=args.videos,
        captions_file=args.captions,
        min_clip_seconds=args.min_clip_seconds,
        max_skip_fraction=args.max_skip_fraction,
        test_fraction=args.test_fraction,
        data_dir=args.data_dir,
    )


registry.register(
    registry.DatasetKind(
        name="video_text_folder",
        help="your own videos + a captions file",
        description="Videos (mp4, webm, mov, mkv) under --videos with captions from a CSV (header with columns "
        "path,caption) or JSONL ({'path':..., 'caption':...} per line); path is relative to --videos. "
        "Unusable videos are skipped and listed in DATA_DIR/video_text_folder/skipped.json.",
        add_arguments=_folder_arguments,
        make_builder=_folder_builder,
    )
)
