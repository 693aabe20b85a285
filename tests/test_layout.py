"""Structured3D paths parse into scene, room, view, config, position, kind and split."""

from __future__ import annotations

import pytest

from sanitize.layout import parse_layout, split_of


def test_panorama_path() -> None:
    fields = parse_layout(
        "Structured3D/scene_00012/2D_rendering/485142/panorama/full/rgb_rawlight.png"
    )
    assert fields == {
        "scene": 12,
        "room": "485142",
        "view": "panorama",
        "config": "full",
        "position": None,
        "kind": "rgb_rawlight",
        "split": "train",
        "errata": False,
    }


def test_perspective_path_has_position() -> None:
    fields = parse_layout("scene_03100/2D_rendering/7/perspective/empty/3/depth.png")
    assert (fields["view"], fields["config"], fields["position"], fields["kind"]) == (
        "perspective",
        "empty",
        "3",
        "depth",
    )
    assert fields["split"] == "val"


@pytest.mark.parametrize(
    "path",
    [
        "SUN360/bedroom/pano_1.jpg",
        "scene_00001/2D_rendering/1/panorama/rgb_rawlight.png",  # no config folder
        "scene_00001/2D_rendering/1/perspective/simple/0/rgb_rawlight.png",  # no such config
        "scene_1/2D_rendering/1/panorama/full/rgb_rawlight.png",
    ],
)
def test_other_paths_have_no_layout(path: str) -> None:
    assert set(parse_layout(path).values()) == {None}


@pytest.mark.parametrize(
    ("scene", "split"),
    [
        (0, "train"),
        (2999, "train"),
        (3000, "val"),
        (3249, "val"),
        (3250, "test"),
        (3499, "test"),
        (3500, None),
    ],
)
def test_official_split_boundaries(scene: int, split: str | None) -> None:
    assert split_of(scene) == split
