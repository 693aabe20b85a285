"""The training config: `configs/default.yaml` read once into frozen dataclasses, or a clear error.

The file keeps the shape users already have (`paths`, `training.num_workers`,
`training.cache_cleanup_interval`, `training.stage_configs.<stage>`). Wrong types and values
raise `ConfigError` naming the key; keys this trainer does not use (a user's file carries more
than ours) are listed in `Config.ignored` and logged, not fatal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

BUILTIN_MODEL = "panovlm.model:PanoCaptioner"


class ConfigError(ValueError):
    """A config file that cannot be trained from; the message names the file and key."""


@dataclass(frozen=True)
class PathsConfig:
    manifest: Path = Path("manifests/clean.parquet")
    runs_dir: Path = Path("runs")
    # None: from HF_HUB_CACHE / HF_HOME, and WANDB_DIR, as the libraries themselves do
    hf_cache: Path | None = None
    wandb_dir: Path | None = None


@dataclass(frozen=True)
class DataConfig:
    image_size: tuple[int, int] = (64, 128)
    max_retries: int = 10


@dataclass(frozen=True)
class StageConfig:
    name: str
    batch_size: int
    epochs: int
    lr: float
    accumulate_grad_batches: int = 1


@dataclass(frozen=True)
class TrainingConfig:
    stages: tuple[StageConfig, ...]
    num_workers: int = 2
    cache_cleanup_interval: int = 1000
    seed: int = 0
    device: str = "auto"
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 0
    run_name: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    name: str = BUILTIN_MODEL
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    paths: PathsConfig
    data: DataConfig
    training: TrainingConfig
    model: ModelConfig
    source: Path | None = None
    ignored: tuple[str, ...] = ()

    def with_overrides(
        self,
        *,
        manifest: str | os.PathLike[str] | None = None,
        runs_dir: str | os.PathLike[str] | None = None,
        cache_cleanup_interval: int | None = None,
        num_workers: int | None = None,
        model: str | None = None,
        run_name: str | None = None,
    ) -> Config:
        """A copy with the command line's values in place of the file's."""
        paths, training, model_config = self.paths, self.training, self.model
        if manifest is not None:
            paths = dataclasses.replace(paths, manifest=Path(manifest))
        if runs_dir is not None:
            paths = dataclasses.replace(paths, runs_dir=Path(runs_dir))
        if cache_cleanup_interval is not None:
            value = _non_negative_int("--cache-cleanup-interval", cache_cleanup_interval)
            training = dataclasses.replace(training, cache_cleanup_interval=value)
        if num_workers is not None:
            training = dataclasses.replace(
                training, num_workers=_non_negative_int("--num-workers", num_workers)
            )
        if run_name is not None:
            training = dataclasses.replace(training, run_name=_run_name("--run-name", run_name))
        if model is not None:
            model_config = ModelConfig(
                name=_model_name("--model", model), options=self.model.options
            )
        return dataclasses.replace(self, paths=paths, training=training, model=model_config)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a YAML config file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        config = parse_config(raw if raw is not None else {})
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if config.ignored:
        logger.info("%s: not used by this trainer: %s", path, ", ".join(config.ignored))
    return dataclasses.replace(config, source=path)


def parse_config(raw: Any) -> Config:
    """Validate a config already parsed from YAML (a dict of sections)."""
    _mapping("the config", raw)
    ignored: list[str] = []
    paths = _section(raw, "paths", ("manifest", "runs_dir", "hf_cache", "wandb_dir"), ignored)
    data = _section(raw, "data", ("image_size", "max_retries"), ignored)
    model = _section(raw, "model", ("name", "options"), ignored)
    training = _section(
        raw,
        "training",
        (*(f.name for f in dataclasses.fields(TrainingConfig)), "stage_configs"),
        ignored,
    )
    ignored.extend(sorted(key for key in raw if key not in ("paths", "data", "model", "training")))

    defaults = TrainingConfig(stages=())
    options = model.get("options", {})
    _mapping("model.options", options)
    return Config(
        paths=PathsConfig(
            manifest=_path("paths.manifest", paths.get("manifest", PathsConfig.manifest)),
            runs_dir=_path("paths.runs_dir", paths.get("runs_dir", PathsConfig.runs_dir)),
            hf_cache=_optional_path("paths.hf_cache", paths.get("hf_cache")),
            wandb_dir=_optional_path("paths.wandb_dir", paths.get("wandb_dir")),
        ),
        data=DataConfig(
            image_size=_image_size(data.get("image_size", DataConfig.image_size)),
            max_retries=_positive_int(
                "data.max_retries", data.get("max_retries", DataConfig.max_retries)
            ),
        ),
        training=TrainingConfig(
            stages=_stages(training, ignored),
            num_workers=_non_negative_int(
                "training.num_workers", training.get("num_workers", defaults.num_workers)
            ),
            cache_cleanup_interval=_non_negative_int(
                "training.cache_cleanup_interval",
                training.get("cache_cleanup_interval", defaults.cache_cleanup_interval),
            ),
            seed=_non_negative_int("training.seed", training.get("seed", defaults.seed)),
            device=_device(training.get("device", defaults.device)),
            log_every_n_steps=_positive_int(
                "training.log_every_n_steps",
                training.get("log_every_n_steps", defaults.log_every_n_steps),
            ),
            checkpoint_every_n_steps=_non_negative_int(
                "training.checkpoint_every_n_steps",
                training.get("checkpoint_every_n_steps", defaults.checkpoint_every_n_steps),
            ),
            run_name=_run_name("training.run_name", training.get("run_name")),
        ),
        model=ModelConfig(
            name=_model_name("model.name", model.get("name", BUILTIN_MODEL)), options=dict(options)
        ),
        ignored=tuple(ignored),
    )


def _section(raw: Mapping, name: str, known: tuple[str, ...], ignored: list[str]) -> Mapping:
    section = raw.get(name)
    if section is None:
        return {}
    _mapping(name, section)
    ignored.extend(f"{name}.{key}" for key in section if key not in known)
    return section


def _stages(training: Mapping, ignored: list[str]) -> tuple[StageConfig, ...]:
    configs = training.get("stage_configs")
    if not configs:
        raise ConfigError("training.stage_configs must name at least one stage")
    _mapping("training.stage_configs", configs)
    order = training.get("stages")
    if order is None:
        order = list(configs)
    if isinstance(order, str):
        order = [order]
    if not isinstance(order, list) or not order or not all(isinstance(s, str) for s in order):
        raise ConfigError(f"training.stages must be a list of stage names, got {order!r}")
    unknown = [name for name in order if name not in configs]
    if unknown:
        raise ConfigError(
            f"training.stages names {', '.join(unknown)}, which training.stage_configs does not "
            f"define (it defines {', '.join(map(str, configs))})"
        )
    stages = []
    for name in order:
        stage = configs[name]
        key = f"training.stage_configs.{name}"
        _mapping(key, stage)
        known = {f.name for f in dataclasses.fields(StageConfig)} - {"name"}
        ignored.extend(f"{key}.{k}" for k in stage if k not in known)
        for required in ("batch_size", "epochs", "lr"):
            if required not in stage:
                raise ConfigError(f"{key}.{required} is missing")
        stages.append(
            StageConfig(
                name=name,
                batch_size=_positive_int(f"{key}.batch_size", stage["batch_size"]),
                epochs=_positive_int(f"{key}.epochs", stage["epochs"]),
                lr=_positive_float(f"{key}.lr", stage["lr"]),
                accumulate_grad_batches=_positive_int(
                    f"{key}.accumulate_grad_batches", stage.get("accumulate_grad_batches", 1)
                ),
            )
        )
    return tuple(stages)


def _mapping(key: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a mapping, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(key: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    return value


def _non_negative_int(key: str, value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise ConfigError(f"{key} must be an integer >= 0, got {value!r}")
    return value


def _positive_float(key: str, value: Any) -> float:
    # YAML 1.1 reads `1e-4` (no dot) as a string; accept it as the number it is meant to be.
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{key} must be a positive number, got {value!r}")
    return float(value)


def _path(key: str, value: Any) -> Path:
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise ConfigError(f"{key} must be a path, got {value!r}")
    return Path(value).expanduser()


def _optional_path(key: str, value: Any) -> Path | None:
    return None if value is None else _path(key, value)


def _image_size(value: Any) -> tuple[int, int]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(_is_int(v) and v > 0 for v in value)
    ):
        raise ConfigError(f"data.image_size must be [height, width] in pixels, got {value!r}")
    return (value[0], value[1])


def _device(value: Any) -> str:
    if value != "auto":
        import torch

        try:
            torch.device(value)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(
                f"training.device must be 'auto' or a torch device, got {value!r}"
            ) from exc
    return value


def _model_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or value.count(":") != 1 or not all(value.split(":")):
        raise ConfigError(f"{key} must be 'module:Class', got {value!r}")
    return value


def _run_name(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
        raise ConfigError(f"{key} must be a folder name, got {value!r}")
    return value
