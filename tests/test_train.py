"""The config file, the training loop (masking, stages, checkpoints) and `panovlm train`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from panovlm.cli import main
from panovlm.commands.train import HF_ENV_DEFAULTS, set_hf_env_defaults
from panovlm.config import ConfigError, load_config, parse_config
from panovlm.train import masked_loss, train
from tests.panodata import colour_manifest, damage

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["red", "green", "blue"]


def tiny_config(
    tmp_path: Path,
    *,
    rows: int = 12,
    batch: int = 2,
    epochs: int = 1,
    accumulate: int = 1,
    interval: int = 0,
    lr: float = 3e-3,
    model: str | None = None,
):
    manifest = tmp_path / "data" / "clean.parquet"
    if not manifest.exists():
        colour_manifest(manifest.parent, [NAMES[i % 3] for i in range(rows)])
    raw = {
        "paths": {"manifest": str(manifest), "runs_dir": str(tmp_path / "runs")},
        "data": {"image_size": [16, 32], "max_retries": 2},
        "model": {"options": {"width": 32}},
        "training": {
            "num_workers": 0,
            "cache_cleanup_interval": interval,
            "run_name": "test",
            "stage_configs": {
                "vision": {
                    "batch_size": batch,
                    "epochs": epochs,
                    "lr": lr,
                    "accumulate_grad_batches": accumulate,
                }
            },
        },
    }
    if model:
        raw["model"] = {"name": model}
    return parse_config(raw)


# --- the config file -------------------------------------------------------------------------


def test_the_default_config_keeps_the_shape_users_have() -> None:
    config = load_config(ROOT / "configs" / "default.yaml")
    assert config.training.cache_cleanup_interval == 1000
    assert config.training.num_workers >= 0
    assert [s.name for s in config.training.stages] == ["vision", "finetune"]
    vision = config.training.stages[0]
    assert vision.batch_size > 0 and vision.epochs > 0 and vision.lr > 0
    assert vision.accumulate_grad_batches >= 1
    assert config.paths.manifest == Path("manifests/clean.parquet")
    assert config.paths.runs_dir == Path("runs")
    assert config.model.name == "panovlm.model:PanoCaptioner"
    assert config.ignored == ()


def _config_text(tmp_path: Path, training: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(
        "paths: {manifest: m.parquet, runs_dir: runs}\n"
        "training:\n" + "".join(f"  {line}\n" for line in training.strip().splitlines())
    )
    return path


STAGES = "stage_configs: {vision: {batch_size: 4, epochs: 1, lr: 1e-4}}"


def test_a_yaml_lr_without_a_dot_is_a_number(tmp_path: Path) -> None:
    # PyYAML reads 1e-4 as the string "1e-4"; users write it that way.
    config = load_config(_config_text(tmp_path, STAGES))
    assert config.training.stages[0].lr == pytest.approx(1e-4)
    assert config.training.cache_cleanup_interval == 1000  # the default


@pytest.mark.parametrize(
    ("training", "message"),
    [
        (
            "cache_cleanup_interval: -5\n" + STAGES,
            "training.cache_cleanup_interval must be an integer >= 0",
        ),
        ("cache_cleanup_interval: 1000.0\n" + STAGES, "training.cache_cleanup_interval"),
        ("cache_cleanup_interval: often\n" + STAGES, "training.cache_cleanup_interval"),
        ("num_workers: -1\n" + STAGES, "training.num_workers"),
        (
            "stage_configs: {vision: {batch_size: 0, epochs: 1, lr: 1}}",
            "vision.batch_size must be a positive",
        ),
        ("stage_configs: {vision: {batch_size: 4, lr: 1}}", "vision.epochs is missing"),
        (
            "stage_configs: {vision: {batch_size: 4, epochs: 1, lr: fast}}",
            "vision.lr must be a positive",
        ),
        (
            "stages: [vision, finetune]\n" + STAGES,
            "finetune, which training.stage_configs does not define",
        ),
        ("num_workers: 2", "stage_configs must name at least one stage"),
    ],
)
def test_bad_values_are_errors_that_name_the_file_and_key(
    tmp_path: Path, training: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        load_config(_config_text(tmp_path, training))
    assert str(error.value).startswith(f"{tmp_path / 'c.yaml'}: ")


def test_keys_this_trainer_does_not_use_are_listed_not_fatal(tmp_path: Path) -> None:
    config = load_config(_config_text(tmp_path, "wandb_project: panovlm\n" + STAGES))
    assert config.ignored == ("training.wandb_project",)


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_command_line_values_override_the_file(tmp_path: Path) -> None:
    config = load_config(ROOT / "configs" / "default.yaml").with_overrides(
        manifest="other.parquet", cache_cleanup_interval=0, model="my.models:Big"
    )
    assert config.paths.manifest == Path("other.parquet")
    assert config.training.cache_cleanup_interval == 0
    assert config.model.name == "my.models:Big"
    with pytest.raises(ConfigError, match="--cache-cleanup-interval"):
        config.with_overrides(cache_cleanup_interval=-1)


def test_hugging_face_defaults_never_override_the_users_values() -> None:
    environ = {"HF_HUB_DISABLE_PROGRESS_BARS": "0"}
    set_hf_env_defaults(environ)
    assert environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"
    assert environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] == "1"
    assert environ["HF_HUB_DISABLE_SYMLINKS_WARNING"] == "1"
    assert set(environ) == set(HF_ENV_DEFAULTS)


# --- the loop --------------------------------------------------------------------------------


def test_placeholders_are_masked_out_of_the_loss() -> None:
    losses = torch.tensor([1.0, 100.0, 3.0], requires_grad=True)
    loss = masked_loss(losses, torch.tensor([False, True, False]))
    assert loss.item() == pytest.approx(2.0)
    loss.backward()
    assert losses.grad.tolist() == [0.5, 0.0, 0.5]
    assert masked_loss(losses, torch.tensor([True, True, True])).item() == 0.0
    with pytest.raises(ValueError, match="one loss per sample"):
        masked_loss(losses.mean(), torch.tensor([False, False, False]))


def test_a_placeholder_has_no_effect_on_the_built_in_models_update(tmp_path: Path) -> None:
    from panovlm.dataset import PanoDataset
    from panovlm.model import PanoCaptioner

    dataset = PanoDataset(colour_manifest(tmp_path, NAMES), image_size=(16, 32))
    real = [dataset[i] for i in range(3)]
    placeholder = {**real[0], "image": torch.zeros(3, 16, 32), "is_placeholder": True}
    grads = []
    for samples in (real, [*real, placeholder]):
        torch.manual_seed(0)
        model = PanoCaptioner.from_dataset(dataset, width=32)
        batch = torch.utils.data.default_collate(samples)
        masked_loss(model(batch), batch["is_placeholder"]).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_a_short_cpu_run_learns(tmp_path: Path) -> None:
    """Captions name the image's colour: the loss must fall well below where it starts."""
    config = tiny_config(tmp_path, rows=24, batch=4, epochs=6, interval=10)
    result = train(config)
    assert result.global_step == 36
    first, last = result.losses[:5], result.losses[-5:]
    assert sum(last) / 5 < 0.4 * (sum(first) / 5), result.losses
    assert result.cleanups == [10, 20, 30]
    (checkpoint,) = result.checkpoints
    assert checkpoint == tmp_path / "runs" / "test" / "vision-step00000036.pt"
    state = torch.load(checkpoint, weights_only=False)
    assert state["global_step"] == 36 and state["stage"] == "vision"
    assert not [p for p in checkpoint.parent.iterdir() if p.name.startswith(".")]  # no temp files


def test_a_run_with_rotten_files_masks_placeholders_and_goes_on(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, rows=6, batch=3)
    from panovlm.dataset import PanoDataset

    dataset = PanoDataset(config.paths.manifest, image_size=(16, 32))
    for row in (0, 1, 3, 4):  # max_retries 2: rows 0 and 3 find no image within two tries
        damage(dataset.url(row))
    result = train(config)
    assert result.placeholders == 2
    assert result.samples == 4
    assert all(loss == loss for loss in result.losses)  # finite, no NaN from empty batches


def test_max_steps_stops_and_checkpoints(tmp_path: Path) -> None:
    result = train(tiny_config(tmp_path, epochs=5), max_steps=4)
    assert result.global_step == 4 and result.stopped_early
    assert [p.name for p in result.checkpoints] == ["vision-step00000004.pt"]


class ColourModel(nn.Module):
    """A user's own model: mean colour to a class, one loss per sample."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)

    def forward(self, batch: dict) -> torch.Tensor:
        target = torch.tensor([NAMES.index(a.split()[1]) for a in batch["annotation"]])
        logits = self.linear(batch["image"].mean(dim=(2, 3)))
        return nn.functional.cross_entropy(logits, target, reduction="none")


def test_the_cli_trains_a_users_model(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in HF_ENV_DEFAULTS:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)  # unset now, restored after the test
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")  # the user's choice
    config = tiny_config(tmp_path)  # writes the manifest
    path = tmp_path / "c.yaml"
    path.write_text(
        "paths: {runs_dir: " + str(tmp_path / "runs") + "}\n"
        "data: {image_size: [8, 16]}\n"
        "training:\n  num_workers: 1\n"
        "  stage_configs: {vision: {batch_size: 4, epochs: 2, lr: 1.0e-2}}\n"
    )
    code = main(
        [
            "train",
            "--config",
            str(path),
            "--manifest",
            str(config.paths.manifest),
            "--model",
            "tests.test_train:ColourModel",
            "--max-steps",
            "5",
            "--cache-cleanup-interval",
            "2",
            "--run-name",
            "cli",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("Trained 5 optimizer steps in ")
    assert (tmp_path / "runs" / "cli" / "vision-step00000005.pt").is_file()
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"
    assert os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] == "1"
    assert os.environ["HF_HUB_DISABLE_SYMLINKS_WARNING"] == "1"


def test_the_cli_reports_set_up_errors_in_one_line(tmp_path: Path, capsys) -> None:
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    config = tiny_config(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_text("training: {stage_configs: {v: {batch_size: 1, epochs: 1, lr: 1}}}\n")
    assert main(["train", "--config", str(path), "--manifest", str(tmp_path / "x.parquet")]) == 2
    assert "manifest not found" in capsys.readouterr().err
    code = main(["train", "--config", str(path), "--manifest", str(config.paths.manifest),
                 "--model", "no_such_module:Model"])  # fmt: skip
    assert code == 2
    assert "cannot import the model module 'no_such_module'" in capsys.readouterr().err


def test_an_image_only_manifest_asks_for_the_annotations(tmp_path: Path, capsys) -> None:
    from tests.panodata import COLOURS, make_image, write_manifest

    url = make_image(tmp_path / "a.png", COLOURS["red"])
    manifest = write_manifest(tmp_path / "clean.parquet", {"url": [url], "relpath": ["a.png"]})
    path = tmp_path / "c.yaml"
    path.write_text("training: {stage_configs: {v: {batch_size: 1, epochs: 1, lr: 1}}}\n")
    assert main(["train", "--config", str(path), "--manifest", str(manifest)]) == 2
    assert "no text column to caption; scan with the annotations" in capsys.readouterr().err
