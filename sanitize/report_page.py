"""The review page as one HTML string: header totals, SVG charts, the rows as embedded JSON.

The table is drawn by the page's own script from the JSON, a page of rows at a time, so
filtering and searching 10,000 rows works on arrays, not on 10,000 DOM rows.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from html import escape
from importlib import resources

from sanitize.charts import Bar, bar_chart
from sanitize.check import ERROR_TYPES
from sanitize.thumbnails import Thumbnail

TYPE_COLOURS = {
    "missing": "#8c6d31",
    "unreadable": "#843c39",
    "empty": "#9e9e9e",
    "not_an_image": "#7b4ea3",
    "too_large": "#e6730b",
    "zero_filled": "#2b7bba",
    "truncated": "#d62f2f",
    "checksum": "#c9a100",
    "corrupt_data": "#d6338a",
    "decoder_crash": "#333333",
}
TOP_GROUPS = 12
NO_ARCHIVE = "(no archive)"
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True, slots=True)
class Review:
    """Everything the page shows: report rows (with plan fields when a plan exists) and more."""

    rows: list[dict]
    thumbnails: list[Thumbnail]  # one per row
    summary: dict | None
    has_plan: bool
    source: str  # the folder the rows were read from


def render_page(review: Review) -> str:
    """The whole self-contained page: inline CSS, SVG and script, no network."""
    root = (review.summary or {}).get("data_root") or ""
    parts = {
        "title": escape(f"Damage review: {root}" if root else "Damage review"),
        "style": _asset("page.css"),
        "header": _header(review),
        "charts": _charts(review),
        "data": _data_json(review),
        "script": _asset("page.js"),
    }
    # One pass over the template only: placeholders inside inserted text stay as they are.
    return _PLACEHOLDER.sub(lambda m: parts[m[1]], _asset("page.html"))


def group_of(row: dict) -> str:
    """Where damage clusters: the Structured3D scene, else the top folder of the path."""
    if row.get("scene") is not None:
        return f"scene_{int(row['scene']):05d}"
    head, sep, _ = row["relpath"].partition("/")
    return head if sep else "(top level)"


def type_order(rows: list[dict]) -> list[str]:
    """The error types present, in the scan's vocabulary order, unknown ones last."""
    present = {row["error_type"] for row in rows}
    return [t for t in ERROR_TYPES if t in present] + sorted(present - set(ERROR_TYPES))


def _asset(name: str) -> str:
    return (resources.files("sanitize") / "report_assets" / name).read_text(encoding="utf-8")


def _header(review: Review) -> str:
    summary = review.summary or {}
    rows = review.rows
    damaged = len(rows)
    damaged_bytes = sum(row.get("bytes") or 0 for row in rows)
    cards = []
    if "scanned" in summary:
        share = damaged / summary["scanned"] if summary["scanned"] else 0.0
        cards += [
            _card(f"{summary['scanned']:,}", "scanned"),
            _card(f"{summary.get('clean', summary['scanned'] - damaged):,}", "clean", "ok"),
            _card(f"{damaged:,}", f"damaged · {share:.1%}", "bad"),
        ]
    else:
        cards.append(_card(f"{damaged:,}", "damaged", "bad"))
    cards += [
        _card(human_bytes(damaged_bytes), "in damaged files"),
        _card(f"{len(type_order(rows))}", "error types"),
    ]
    if review.has_plan:
        statuses = Counter(row.get("status") for row in rows)
        archives = {row.get("archive") for row in rows if row.get("status") == "repairable"}
        cards.append(
            _card(f"{statuses['repairable']:,}", f"repairable from {len(archives)} archive(s)")
        )
        if statuses["repaired"]:
            cards.append(_card(f"{statuses['repaired']:,}", "repaired", "ok"))
    meta = [f"rows from <code>{escape(review.source)}</code>"]
    created = (summary.get("settings") or {}).get("created_at")
    if created:
        meta.insert(0, f"scan of {escape(_when(created))}")
    root = summary.get("data_root")
    title = f'<span class="root">{escape(root)}</span>' if root else ""
    return (
        f"<h1>Damage review {title}</h1>"
        f'<p class="meta">{" · ".join(meta)}</p>'
        f'<div class="cards">{"".join(cards)}</div>'
    )


def _card(value: str, label: str, kind: str = "") -> str:
    return f'<div class="card {kind}"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def _charts(review: Review) -> str:
    rows = review.rows
    if not rows:
        return '<p class="none">No damaged images: nothing to review.</p>'
    types = type_order(rows)
    counts = Counter(row["error_type"] for row in rows)
    by_type = [Bar(t, {t: counts[t]}, {"type": t}) for t in types]
    figures = [
        _figure("Damage by type", bar_chart("chart-types", "by type", by_type, TYPE_COLOURS))
    ]
    groups = [group_of(row) for row in rows]
    noun = "scene" if any(g.startswith("scene_") for g in groups) else "folder"
    figures.append(_group_figure("chart-groups", noun, groups, rows, types))
    if review.has_plan:
        archives = [row.get("archive") or NO_ARCHIVE for row in rows]
        figures.append(_group_figure("chart-archives", "archive", archives, rows, types))
    return "".join(figures)


def _group_figure(
    chart_id: str, noun: str, names: list[str], rows: list[dict], types: list[str]
) -> str:
    """Stacked bars by type for the TOP_GROUPS largest groups, the rest summed in one bar."""
    per_group: dict[str, Counter[str]] = {}
    for name, row in zip(names, rows, strict=True):
        per_group.setdefault(name, Counter())[row["error_type"]] += 1
    ranked = sorted(per_group.items(), key=lambda item: (-item[1].total(), item[0]))
    bars = [
        Bar(_label(noun, name), _ordered(c, types), _group_attrs(noun, name))
        for name, c in ranked[:TOP_GROUPS]
    ]
    rest = ranked[TOP_GROUPS:]
    if rest:
        total = sum((c for _, c in rest), Counter())
        bars.append(Bar(f"{len(rest):,} more {noun}s", _ordered(total, types), {}))
    title = f"Damage by {noun}"
    if len(ranked) > TOP_GROUPS:
        title += f" (top {TOP_GROUPS} of {len(ranked):,})"
    return _figure(title, bar_chart(chart_id, f"by {noun}", bars, TYPE_COLOURS))


def _label(noun: str, name: str) -> str:
    return name.rpartition("/")[2] if noun == "archive" else name


def _group_attrs(noun: str, name: str) -> dict[str, str]:
    """A click on a group searches for it: folders end with "/", archives match by name."""
    if name in (NO_ARCHIVE, "(top level)"):
        return {}
    return {"search": name if noun == "archive" else f"{name}/"}


def _ordered(counts: Counter[str], types: list[str]) -> dict[str, int]:
    return {t: counts[t] for t in types if counts[t]}


def _figure(caption: str, svg: str) -> str:
    return f"<figure><figcaption>{escape(caption)}</figcaption>{svg}</figure>"


def _data_json(review: Review) -> str:
    """The rows as compact arrays (see COLUMNS in page.js), safe inside a <script> element."""
    types = type_order(review.rows)
    type_index = {t: i for i, t in enumerate(types)}
    groups: dict[str, int] = {}
    thumbs: list[str] = []
    rows = []
    for row, thumb in zip(review.rows, review.thumbnails, strict=True):
        group = groups.setdefault(group_of(row), len(groups))
        if thumb.image is not None:
            thumbs.append(thumb.image)
        rows.append(
            [
                row["relpath"],
                type_index[row["error_type"]],
                row.get("error") or "",
                row.get("bytes"),
                group,
                row.get("archive"),
                row.get("entry"),
                row.get("status"),
                row.get("reason"),
                len(thumbs) - 1 if thumb.image is not None else -1,
                thumb.glyph,
                None if thumb.decoded is None else round(thumb.decoded, 3),
                thumb.note,
            ]
        )
    data = {
        "types": types,
        "colours": [TYPE_COLOURS.get(t, "#888888") for t in types],
        "groups": list(groups),
        "plan": review.has_plan,
        "thumbs": thumbs,
        "rows": rows,
    }
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c")  # no "</script>" or "<!--" can end the element early


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _when(created_at: str) -> str:
    try:
        return datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%S%z").strftime("%Y-%m-%d %H:%M %Z")
    except ValueError:
        return created_at
