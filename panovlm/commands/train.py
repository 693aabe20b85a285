"""`panovlm train --config configs/default.yaml`: train on the clean manifest."""

from __future__ import annotations

import argparse
import logging
import os
import sys

# Quiet Hugging Face libraries a user's model may import; set before any of them is imported,
# and only where the user has not chosen a value.
HF_ENV_DEFAULTS = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_SYMLINKS_WARNING": "1",
}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train on the clean manifest (plain PyTorch)")
    parser.add_argument("--config", default="configs/default.yaml", help="YAML config file")
    parser.add_argument("--manifest", help="clean manifest to train on (default: paths.manifest)")
    parser.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    parser.add_argument(
        "--cache-cleanup-interval",
        type=int,
        metavar="K",
        help="gc.collect + empty the device cache every K optimizer steps; 0 disables",
    )
    parser.add_argument("--model", metavar="MODULE:CLASS", help="train your own model class")
    parser.add_argument("--num-workers", type=int, help="DataLoader workers")
    parser.add_argument("--run-name", help="folder under paths.runs_dir (default: start time)")
    parser.add_argument(
        "--disk-margin-gb",
        type=float,
        default=1.0,
        help="free space kept on the runs folder beyond 2x the last checkpoint (default 1)",
    )
    parser.set_defaults(run=run)


def set_hf_env_defaults(environ: dict | None = None) -> None:
    """Set the Hugging Face quieting variables the user has not set."""
    environ = os.environ if environ is None else environ
    for name, value in HF_ENV_DEFAULTS.items():
        environ.setdefault(name, value)


def run(args: argparse.Namespace) -> int:
    set_hf_env_defaults()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from panovlm.config import ConfigError, load_config
    from panovlm.dataset import ManifestError

    try:
        config = load_config(args.config).with_overrides(
            manifest=args.manifest,
            cache_cleanup_interval=args.cache_cleanup_interval,
            num_workers=args.num_workers,
            model=args.model,
            run_name=args.run_name,
        )
        if args.max_steps is not None and args.max_steps < 1:
            raise ConfigError(f"--max-steps must be >= 1, got {args.max_steps}")
    except ConfigError as exc:
        print(f"panovlm train: {exc}", file=sys.stderr)
        return 2

    from panovlm.hygiene.guard import DiskGuard, OutOfDiskSpace
    from panovlm.train import train

    if args.disk_margin_gb < 0:
        print(
            f"panovlm train: --disk-margin-gb must be >= 0, got {args.disk_margin_gb}",
            file=sys.stderr,
        )
        return 2
    guard = DiskGuard(config.paths.runs_dir, margin_bytes=int(args.disk_margin_gb * 1e9))
    try:
        result = train(config, max_steps=args.max_steps, disk_guard=guard)
    except (ConfigError, ManifestError) as exc:
        print(f"panovlm train: {exc}", file=sys.stderr)
        return 2
    except OutOfDiskSpace as exc:
        print(f"panovlm train: stopped: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("panovlm train: interrupted", file=sys.stderr)
        return 130
    losses = [loss for loss in result.losses if loss == loss]
    head, tail = losses[:5], losses[-5:]
    print(
        f"Trained {result.global_step} optimizer steps in {result.seconds:.1f} s; "
        f"loss {sum(head) / max(len(head), 1):.3f} (first 5 steps) -> "
        f"{sum(tail) / max(len(tail), 1):.3f} (last 5); "
        f"{result.placeholders} placeholder samples masked out"
    )
    if result.checkpoints:
        print(f"Checkpoints in {result.run_dir}: {', '.join(p.name for p in result.checkpoints)}")
    return 0
