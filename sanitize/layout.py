"""Structured3D path layout: scene, room, view, config, position, kind and official split."""

from __future__ import annotations

import re
from dataclasses import dataclass

LAYOUT_FIELDS = ("scene", "room", "view", "config", "position", "kind", "split", "errata")
SPLITS = ("train", "val", "test")
# Scenes the Structured3D authors list as invalid in their published errata.
ERRATA_SCENES = frozenset({1155, 1192, 1714, 1816, 1852, 3398})
# Each panorama config is rendered under these three lightings.
LIGHTINGS = ("rgb_rawlight", "rgb_coldlight", "rgb_warmlight")

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


def is_errata(scene: int | None) -> bool:
    return scene in ERRATA_SCENES


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
        "errata": is_errata(scene),
    }


@dataclass(frozen=True)
class Selection:
    """--split and --exclude-errata: which Structured3D files a scan or manifest keeps."""

    split: str | None = None
    exclude_errata: bool = False

    def reason_to_drop(self, relpath: str) -> str | None:
        """None when the file is kept, else why not: "other_split" or "errata"."""
        if self.split is None and not self.exclude_errata:
            return None
        fields = parse_layout(relpath)
        if self.split is not None and fields["split"] != self.split:
            return "other_split"
        if self.exclude_errata and fields["errata"]:
            return "errata"
        return None


class PanoramaSets:
    """Finds panorama folders (scene, room, config) lacking a clean image of some lighting.

    Rows arrive in path order, so a folder's files are consecutive: only the folder at hand
    is tracked, and only the gaps are kept (memory stays flat over millions of files).
    """

    def __init__(self) -> None:
        self._key: tuple[int, str, str] | None = None
        self._present = self._clean = 0
        self._gaps: list[dict] = []

    def add(self, fields: dict, ok: bool) -> None:
        if fields["view"] != "panorama" or fields["kind"] not in LIGHTINGS:
            return
        key = (fields["scene"], fields["room"], fields["config"])
        if key != self._key:
            self._close()
            self._key = key
        bit = 1 << LIGHTINGS.index(fields["kind"])
        self._present |= bit
        if ok:
            self._clean |= bit

    def incomplete(self) -> list[dict]:
        """Each gap: the folder, which lightings are absent and which damaged."""
        self._close()
        return sorted(self._gaps, key=lambda gap: gap["folder"])

    def _close(self) -> None:
        if self._key is not None and self._clean != (1 << len(LIGHTINGS)) - 1:
            scene, room, config = self._key
            present, clean = self._present, self._clean
            self._gaps.append(
                {
                    "folder": f"scene_{scene:05d}/2D_rendering/{room}/panorama/{config}",
                    "absent": [k for i, k in enumerate(LIGHTINGS) if not present >> i & 1],
                    "damaged": [
                        k
                        for i, k in enumerate(LIGHTINGS)
                        if present >> i & 1 and not clean >> i & 1
                    ],
                }
            )
        self._key, self._present, self._clean = None, 0, 0
