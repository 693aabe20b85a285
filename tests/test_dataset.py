"""PanoDataset: samples from the clean manifest, and the safety net for files that rot later."""

from __future__ import annotations

import gc
import logging
import struct
import types
import zlib
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from torch.utils.data import DataLoader

from panovlm.dataset import ManifestError, PanoDataset
from sanitize.failures import failures_path, read_failures
from tests.panodata import COLOURS, colour_manifest, damage, make_image, write_manifest

NAMES = ["red", "green", "blue", "red", "green", "blue"]


def _colour_of(image: torch.Tensor) -> tuple[int, int, int]:
    return tuple(round(v) for v in (image.mean(dim=(1, 2)) * 255).tolist())


def test_a_sample_carries_image_url_index_and_the_rows_text(tmp_path: Path) -> None:
    dataset = PanoDataset(colour_manifest(tmp_path, NAMES), image_size=(8, 16))
    assert len(dataset) == 6
    # Image metadata (relpath, format, split) is not text; numbers are not text.
    assert dataset.text_columns == ("query", "annotation")
    sample = dataset[2]
    assert set(sample) == {"image", "url", "index", "is_placeholder", "query", "annotation"}
    assert sample["image"].shape == (3, 8, 16)
    assert sample["image"].dtype == torch.float32
    assert _colour_of(sample["image"]) == COLOURS["blue"]
    assert sample["url"].endswith("002_blue.png")
    assert sample["index"] == 2
    assert sample["is_placeholder"] is False
    assert sample["query"] == "Describe picture 2."
    assert sample["annotation"] == "A blue room."


def test_damaged_after_the_scan_takes_the_next_rows_image_and_text_together(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = colour_manifest(tmp_path, NAMES)
    dataset = PanoDataset(manifest, image_size=(8, 16))
    rotten = dataset.url(1)
    damage(rotten)
    with caplog.at_level(logging.WARNING, logger="panovlm.dataset"):
        sample = dataset[1]
    # Row 2 entirely: its image and its text, never row 1's text with row 2's image.
    assert sample["index"] == 2
    assert sample["url"] == dataset.url(2)
    assert _colour_of(sample["image"]) == COLOURS["blue"]
    assert sample["annotation"] == "A blue room."
    assert sample["query"] == "Describe picture 2."
    assert sample["is_placeholder"] is False
    assert [r.getMessage() for r in caplog.records] == [
        f"Failed to load image {rotten}: truncated: {_error_of(caplog)} (retry 1/6)"
    ]
    failures = read_failures(failures_path(manifest))
    assert [(f["url"], f["error_type"]) for f in failures] == [(rotten, "truncated")]


def _error_of(caplog: pytest.LogCaptureFixture) -> str:
    message = caplog.records[0].getMessage()
    return message.split(": truncated: ", 1)[1].rsplit(" (retry", 1)[0]


def test_the_last_row_wraps_to_the_first(tmp_path: Path) -> None:
    dataset = PanoDataset(colour_manifest(tmp_path, NAMES), image_size=(8, 16))
    damage(dataset.url(5))
    sample = dataset[5]
    assert (sample["index"], sample["annotation"]) == (0, "A red room.")


def test_every_try_failing_gives_a_placeholder_after_max_retries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = colour_manifest(tmp_path, NAMES)
    dataset = PanoDataset(manifest, image_size=(8, 16), max_retries=3)
    for row in range(len(dataset)):
        damage(dataset.url(row))
    with caplog.at_level(logging.WARNING, logger="panovlm.dataset"):
        sample = dataset[4]
    assert sample["is_placeholder"] is True
    assert torch.equal(sample["image"], torch.zeros(3, 8, 16))
    assert sample["index"] == 4  # the requested row, whose text it still carries
    assert sample["annotation"] == "A green room."
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert all(
        w.startswith(f"Failed to load image {dataset.url(r)}: truncated: ")
        for w, r in zip(warnings, (4, 5, 0), strict=True)
    )
    assert [w.rsplit(" ", 1)[1] for w in warnings] == ["1/3)", "2/3)", "3/3)"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "placeholder" in errors[0]
    assert [f["url"] for f in read_failures(failures_path(manifest))] == [
        dataset.url(4),
        dataset.url(5),
        dataset.url(0),
    ]


def test_tries_stop_after_every_row_once(tmp_path: Path) -> None:
    manifest = colour_manifest(tmp_path, ["red", "green"])
    dataset = PanoDataset(manifest, image_size=(8, 16), max_retries=10)
    damage(dataset.url(0))
    damage(dataset.url(1))
    assert dataset[0]["is_placeholder"] is True
    assert len(read_failures(failures_path(manifest))) == 2


def test_it_decodes_with_the_sanitizers_strict_checks(tmp_path: Path) -> None:
    """A bad IDAT CRC loads in plain Pillow but is damage to the scan, so here too."""
    manifest = colour_manifest(tmp_path, ["red", "green"])
    dataset = PanoDataset(manifest, image_size=(8, 16))
    path = Path(dataset.url(0))
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", data[start : start + 4])
    crc_at = start + 8 + length
    data[crc_at : crc_at + 4] = struct.pack(">I", zlib.crc32(b"not the crc") & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    from PIL import Image

    Image.open(path).convert("RGB")  # Pillow alone would train on it
    sample = dataset[0]
    assert sample["index"] == 1
    assert read_failures(failures_path(manifest))[0]["error_type"] == "checksum"


def test_several_manifests_read_as_one_and_failures_go_beside_their_own(tmp_path: Path) -> None:
    first = colour_manifest(tmp_path / "a", ["red", "green"])
    second = write_manifest(
        tmp_path / "b" / "clean.parquet",
        {
            "url": [make_image(tmp_path / "b" / "x.png", COLOURS["blue"])],
            "instruction": ["Say the colour."],
            "response": ["Blue."],
        },
    )
    dataset = PanoDataset([first, second], image_size=(8, 16))
    assert len(dataset) == 3
    assert dataset.text_columns == ("query", "annotation", "instruction", "response")
    assert dataset[0]["response"] == ""  # a column the first manifest lacks reads as ""
    assert (dataset[2]["response"], dataset[2]["annotation"]) == ("Blue.", "")
    damage(dataset.url(2))
    assert dataset[2]["index"] == 0
    assert read_failures(failures_path(first)) == []
    assert [f["url"] for f in read_failures(failures_path(second))] == [dataset.url(2)]


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
def test_failures_from_several_dataloader_workers_all_land_whole(tmp_path: Path) -> None:
    names = NAMES * 4
    manifest = colour_manifest(tmp_path, names)
    dataset = PanoDataset(manifest, image_size=(8, 16), max_retries=1)
    for row in range(len(dataset)):
        damage(dataset.url(row))
    loader = DataLoader(dataset, batch_size=2, num_workers=3)
    batches = list(loader)
    assert all(bool(b["is_placeholder"].all()) for b in batches)
    failures = read_failures(failures_path(manifest))
    assert sorted(f["url"] for f in failures) == sorted(dataset.url(r) for r in range(len(names)))
    assert len({f["pid"] for f in failures}) == 3
    assert failures_path(manifest).read_text().count("\n") == len(names)


def test_a_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"manifest not found: .*nope\.parquet"):
        PanoDataset(tmp_path / "nope.parquet")


def test_a_manifest_without_url_is_a_clear_error(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.parquet", {"path": ["/x.png"], "annotation": ["A."]})
    with pytest.raises(ManifestError, match="no 'url' column"):
        PanoDataset(manifest)


def test_an_empty_manifest_is_a_clear_error(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.parquet", {"url": pa.array([], pa.string())})
    with pytest.raises(ManifestError, match="no rows"):
        PanoDataset(manifest)


def test_columns_live_in_buffers_not_per_row_python_objects(tmp_path: Path) -> None:
    """What keeps worker memory flat (pytorch/pytorch#13246): no Python object per row."""
    rows = 20_000
    url = make_image(tmp_path / "one.png", COLOURS["red"])
    manifest = write_manifest(
        tmp_path / "big.parquet",
        {
            "url": [url] * rows,
            "query": [f"Describe picture {i}." for i in range(rows)],
            "annotation": [f"A red room number {i}." for i in range(rows)],
        },
    )
    dataset = PanoDataset(manifest, image_size=(8, 16))
    assert _reachable_objects(dataset) < 100
    assert _reachable_objects([f"row {i}" for i in range(rows)]) > rows  # what it would catch
    assert dataset[rows - 1]["annotation"] == f"A red room number {rows - 1}."
    assert dataset.nbytes < 3 * rows * 64


def _reachable_objects(root: object) -> int:
    """Python objects reachable from `root`, classes, modules and functions aside."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(obj))
        stack.extend(gc.get_referents(obj))
    return len(seen)


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    manifest = colour_manifest(tmp_path, ["red"])
    with pytest.raises(ValueError, match="max_retries"):
        PanoDataset(manifest, max_retries=0)
    with pytest.raises(ValueError, match="image_size"):
        PanoDataset(manifest, image_size=(8,))
    with pytest.raises(ManifestError, match="text column 'caption'"):
        PanoDataset(manifest, text_columns=["caption"])


def test_relative_urls_resolve_against_the_scanned_data_root(tmp_path) -> None:
    """A table naming images relative to DATA trains from any working directory."""
    import csv as csv_module

    from PIL import Image

    from panovlm.dataset import PanoDataset
    from sanitize.cli import main

    data = tmp_path / "data"
    (data / "rooms").mkdir(parents=True)
    Image.new("RGB", (64, 32), (200, 10, 10)).save(data / "rooms" / "a.png")
    table = tmp_path / "t.csv"
    with open(table, "w", newline="") as f:
        csv_module.writer(f).writerows([["url", "annotation"], ["rooms/a.png", "a red room"]])
    out = tmp_path / "out"
    assert main(["scan", str(data), "--out", str(out), "--csv", str(table), "--no-progress"]) == 0
    sample = PanoDataset(out / "clean.parquet", image_size=(16, 32))[0]
    assert sample["url"] == str(data / "rooms" / "a.png")
    assert not sample["is_placeholder"] and sample["annotation"] == "a red room"
    assert sample["image"][0].mean() > 0.7  # the red image itself, not a placeholder
