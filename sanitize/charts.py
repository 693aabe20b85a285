"""Horizontal bar charts as inline SVG strings: no library, no network, crisp at any zoom."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

BAR_HEIGHT = 18
BAR_GAP = 6
COUNT_WIDTH = 56
WIDTH = 390
# The label column fits the longest label at about 7 px a character (12 px text), within bounds.
_CHAR_PX = 7
_LABEL_CHARS = 28


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: its label, its segments (name -> count, drawn in order) and what a click selects."""

    label: str
    segments: Mapping[str, int]
    attrs: Mapping[str, str]  # data-* attributes the page's script reads on click


def bar_chart(chart_id: str, title: str, bars: Sequence[Bar], colours: Mapping[str, str]) -> str:
    """An SVG of stacked horizontal bars scaled to the largest total, counts on the right."""
    top = max((sum(bar.segments.values()) for bar in bars), default=0) or 1
    labels = [_short(bar.label) for bar in bars]
    label_width = 12 + _CHAR_PX * max((len(label) for label in labels), default=0)
    span = WIDTH - label_width - COUNT_WIDTH
    height = len(bars) * (BAR_HEIGHT + BAR_GAP) + BAR_GAP
    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="{escape(title)}">'
    ]
    for i, (bar, label) in enumerate(zip(bars, labels, strict=True)):
        y = BAR_GAP + i * (BAR_HEIGHT + BAR_GAP)
        total = sum(bar.segments.values())
        attrs = "".join(f' data-{k}="{escape(v)}"' for k, v in bar.attrs.items())
        parts.append(f'<g class="bar"{attrs}><title>{escape(_tooltip(bar))}</title>')
        parts.append(
            f'<text class="label" x="{label_width - 8}" y="{y + BAR_HEIGHT - 5}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
        x = float(label_width)
        for name, count in bar.segments.items():
            w = span * count / top
            colour = escape(colours.get(name, "#888"))
            parts.append(
                f'<rect class="segment" data-segment="{escape(name)}" x="{x:.1f}" y="{y}" '
                f'width="{max(w, 1):.1f}" height="{BAR_HEIGHT}" fill="{colour}"/>'
            )
            x += w
        parts.append(
            f'<text class="count" x="{x + 6:.1f}" y="{y + BAR_HEIGHT - 5}">{total:,}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _short(label: str) -> str:
    return label if len(label) <= _LABEL_CHARS else "…" + label[-(_LABEL_CHARS - 1) :]


def _tooltip(bar: Bar) -> str:
    detail = ", ".join(f"{name} {count:,}" for name, count in bar.segments.items())
    return f"{bar.label}: {detail}"
