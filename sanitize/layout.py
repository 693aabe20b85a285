"""Structured3D path layout: scene, room, view, config, position, kind and official split."""

from __future__ import annotations

import re

LAYOUT_FIELDS = ("scene", "room", "view", "config", "position", "kind", "split")

# .../scene_00012/2D_rendering/485142/panorama/full/rgb_rawlight.png
# .../scene_00012/2D_rendering/485142/perspective/empty/3/depth.png
_PATTERN = re.compile(
    r"(?:^|/)scene_(?P<scene>\d{5})/2D_rendering/(?P<room>[^/]+)/"
    r"(?:(?P<pano>panorama)/(?P<pano_config>full|simple|empty)"
    r"|(?P<persp>perspective)/(?P<persp_config>full|empty)/(?P<position>[^/]+))"
    r"/(?P<kind>[^/]+)\.[A-Za-z]+$"
)
# Official split by scene number (Structured3D paper and data release).
_SPLITS = ((0, 2999, "train"), (3000, 3249, "val"), (3250, 3499, "test"))
_EMPTY = dict.fromkeys(LAYOUT_FIELDS)


def split_of(scene: int) -> str | None:
    for low, high, name in _SPLITS:
        if low <= scene <= high:
            return name
    return None


def parse_layout(relpath: str) -> dict[str, object]:
    """The Structured3D fields of a relative POSIX path; all None when it does not follow it."""
    match = _PATTERN.search(relpath)
    if match is None:
        return dict(_EMPTY)
    scene = int(match["scene"])
    return {
        "scene": scene,
        "room": match["room"],
        "view": match["pano"] or match["persp"],
        "config": match["pano_config"] or match["persp_config"],
        "position": match["position"],
        "kind": match["kind"],
        "split": split_of(scene),
    }
