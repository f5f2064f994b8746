"""Charts for the admin console, drawn on the server as inline SVG (issue #9 §5, issue #11 §4).

No chart library and no script: the page's Content-Security-Policy runs scripts from the registry only,
and a chart of a few hundred points is a few kilobytes of SVG that any browser draws as it reads the page.
The data comes in already bounded (summarized in the database by the caller); this module only lays it
out. Every chart is accessible: `role="img"`, a <title> and a <desc> that says in words what it shows,
and each point or bar carries its value in a <title> (the browser's tooltip). Every text is escaped, and
characters XML does not allow are dropped, so a hostile name can neither break out nor break the SVG.

Colours and text use `currentColor` where they are not data, so the charts follow the admin's light and
dark themes. No data: a sentence saying so (`no_data`), never an empty frame.

Three kinds:
- time_series_chart: several lines over time (one per source, or per variant) with labelled vertical
  markers (deploys, rollbacks, an experiment's start);
- bar_chart: one value per category in order (a metric across a model's versions);
- grouped_bar_chart: groups of bars (a group per metric, a bar per version), each group on its own
  scale, since an accuracy of 0.93 and a latency of 120 ms share no axis.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Tableau 10: distinct hues that read on the admin's light and dark backgrounds.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
MARKER_COLOURS = {"deploy": "#2e8b3a", "rollback": "#c0392b"}
OTHER_MARKER_COLOUR = "#7f7f7f"
WIDTH = 960
CHAR_WIDTH = 6.6  # an average glyph of the 12 px sans-serif text, to lay out labels without a browser
LABEL_CHARS = 18  # a category's label under its bar is cut here (the tooltip has it whole)
MAX_BAR_WIDTH = 64
POINTS_MARKED = 60  # a line with more points than this draws its points invisibly (they still give tooltips)

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Series:
    """A line: (time, value) points in time order; `notes` (one per point, optional) go in the tooltips;
    `colour` an index into PALETTE (the series' place by default), to keep a source's colour on every
    chart of a page."""

    label: str
    points: Sequence[tuple[datetime, float]]
    notes: Sequence[str] | None = None
    colour: int | None = None


@dataclass(frozen=True)
class Marker:
    """A vertical line at a moment: `kind` deploy or rollback picks its colour, anything else is grey."""

    at: datetime
    label: str
    kind: str = ""


@dataclass(frozen=True)
class BarSeries:
    """One bar in each group (a version across the metrics); None where it has no value."""

    label: str
    values: Sequence[float | None]


def text(value: object) -> str:
    """Escaped for SVG text and attributes, without the control characters XML refuses."""
    return escape(_NOT_XML.sub("", str(value)))


def number(value: float) -> str:
    return f"{value:.6g}"


def _value_text(value: float | None) -> str:
    return "no value" if value is None else number(value)


def no_data(title: str, message: str = "no data yet.") -> SafeString:
    return mark_safe(f'<p class="registry-chart-empty"><strong>{text(title)}</strong>: {text(message)}</p>')


# --- Scales -------------------------------------------------------------------------------------------
def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (about `count` of them), the first <= low, the last >= high."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("ticks of a non-finite range")
    if high < low:
        low, high = high, low
    if high - low <= 1e-9 * max(1.0, abs(low), abs(high)):  # equal but for rounding: a flat line
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = high / max(1, count) - low / max(1, count)  # not (high - low): that overflows near the float limits
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    last = math.ceil(high / step) * step
    if not (math.isfinite(first) and math.isfinite(last)):  # round ticks past the largest float: the ends
        return [low, high]
    ticks = []
    value = first
    while value <= last + step / 2:
        ticks.append(round(value, 12))
        value += step
    return ticks


TIME_STEPS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(days=1),
    timedelta(days=2),
    timedelta(days=7),
    timedelta(days=14),
    timedelta(days=30),
    timedelta(days=91),
    timedelta(days=365),
)


def time_ticks(start: datetime, end: datetime, count: int = 7) -> tuple[list[datetime], str]:
    """Tick moments in [start, end] at a round step (on UTC boundaries), and the strftime format for them."""
    span = end - start
    step = next((s for s in TIME_STEPS if span / s <= count), TIME_STEPS[-1] * math.ceil(span / TIME_STEPS[-1] / count))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = epoch + step * math.ceil((start - epoch) / step)
    ticks = []
    moment = first
    while moment <= end:
        ticks.append(moment)
        moment += step
    if step >= timedelta(days=1):
        fmt = "%Y-%m-%d"
    elif start.date() == end.date():
        fmt = "%H:%M"
    else:
        fmt = "%m-%d %H:%M"
    return ticks, fmt


def _fraction(value: float, low: float, high: float) -> float:
    """Where `value` is between low (0) and high (1); halved first, so that ±1.7e308 do not overflow."""
    return (value / 2 - low / 2) / (high / 2 - low / 2)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- Pieces -------------------------------------------------------------------------------------------
def _open(title: str, description: str, height: float, kind: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="registry-chart registry-chart-{kind}" role="img" '
        f'aria-label="{text(title)}" viewBox="0 0 {WIDTH} {height:.0f}" width="{WIDTH}" height="{height:.0f}" '
        f'font-size="12" fill="currentColor">',
        f"<title>{text(title)}</title><desc>{text(description)}</desc>",
        f'<text class="registry-chart-title" x="0" y="16" font-size="14" font-weight="bold">{text(title)}</text>',
    ]


def _legend(labels: Sequence[str], top: float, colours: Sequence[str]) -> tuple[list[str], float]:
    """Swatches and labels in rows across the width; the elements and the height they take."""
    parts = ['<g class="registry-legend">']
    x, y = 0.0, top
    for index, label in enumerate(labels):
        width = 22 + CHAR_WIDTH * len(label) + 18
        if x and x + width > WIDTH:
            x, y = 0.0, y + 18
        colour = colours[index]
        parts.append(
            f'<g class="registry-legend-item"><rect x="{x:.1f}" y="{y - 9:.1f}" width="14" height="10" '
            f'fill="{colour}"/><text x="{x + 20:.1f}" y="{y:.1f}">{text(label)}</text></g>'
        )
        x += width
    parts.append("</g>")
    return parts, y - top + 18


def _y_axis(ticks: list[float], scale, left: float, right: float, label: str, top: float, bottom: float) -> list[str]:
    parts = ['<g class="registry-axis registry-y-axis">']
    for tick in ticks:
        y = scale(tick)
        parts.append(
            f'<line x1="{left:.1f}" x2="{right:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="currentColor" '
            f'stroke-opacity="{0.5 if tick == 0 else 0.15}"/>'
            f'<text x="{left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end">{number(tick)}</text>'
        )
    if label:
        middle = (top + bottom) / 2
        parts.append(
            f'<text class="registry-axis-label" x="12" y="{middle:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 12 {middle:.1f})">{text(label)}</text>'
        )
    parts.append("</g>")
    return parts


# --- Lines over time ----------------------------------------------------------------------------------
def time_series_chart(
    *,
    title: str,
    series: Sequence[Series],
    markers: Sequence[Marker] = (),
    y_label: str = "",
    x_label: str = "time (UTC)",
    description: str = "",
    height: int = 320,
    x_range: tuple[datetime, datetime] | None = None,
) -> SafeString:
    """Lines over time, one per series, with vertical markers; `no_data` when no series has a point.
    `x_range` widens the time axis to at least that span (charts drawn one above the other align)."""
    drawn = [s for s in series if s.points]
    if not drawn:
        return no_data(title)
    moments = [_utc(t) for s in drawn for t, _ in s.points] + [_utc(m.at) for m in markers]
    moments += [_utc(t) for t in x_range or ()]
    start, end = min(moments), max(moments)
    if start == end:
        start, end = start - timedelta(hours=1), end + timedelta(hours=1)
    values = [v for s in drawn for _, v in s.points]
    y_ticks = nice_ticks(min(values), max(values))
    colours = [PALETTE[(i if s.colour is None else s.colour) % len(PALETTE)] for i, s in enumerate(drawn)]
    legend, legend_height = _legend([s.label for s in drawn], 40, colours)
    top = 40 + legend_height + (14 if markers else 0)
    left, right = 70.0, WIDTH - 16.0
    bottom = top + height
    total_height = bottom + 46

    def x_of(moment: datetime) -> float:
        return left + (right - left) * ((_utc(moment) - start) / (end - start))

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * _fraction(value, y_ticks[0], y_ticks[-1])

    summary = "; ".join(
        f"{s.label}: {len(s.points)} points, latest {number(s.points[-1][1])} at {_utc(s.points[-1][0]):%Y-%m-%d %H:%M}"
        for s in drawn
    )
    marks = "; ".join(f"{m.label} at {_utc(m.at):%Y-%m-%d %H:%M}" for m in markers)
    parts = _open(
        title,
        " ".join(filter(None, [description, summary + ".", marks and f"Markers: {marks}."])),
        total_height,
        "lines",
    )
    parts += legend
    parts += _y_axis(y_ticks, y_of, left, right, y_label, top, bottom)
    ticks, fmt = time_ticks(start, end)
    parts.append('<g class="registry-axis registry-x-axis">')
    parts.append(
        f'<line x1="{left:.1f}" x2="{right:.1f}" y1="{bottom:.1f}" y2="{bottom:.1f}" stroke="currentColor" '
        f'stroke-opacity="0.5"/>'
    )
    for tick in ticks:
        x = x_of(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom:.1f}" y2="{bottom + 5:.1f}" stroke="currentColor"/>'
            f'<text x="{x:.1f}" y="{bottom + 19:.1f}" text-anchor="middle">{tick:{fmt}}</text>'
        )
    parts.append(
        f'<text class="registry-axis-label" x="{(left + right) / 2:.1f}" y="{bottom + 40:.1f}" '
        f'text-anchor="middle">{text(x_label)}</text></g>'
    )
    for index, marker in enumerate(markers):
        x = x_of(marker.at)
        colour = MARKER_COLOURS.get(marker.kind, OTHER_MARKER_COLOUR)
        label_y = top - 4 - 13 * (index % 2)
        anchor = "end" if x > right - CHAR_WIDTH * len(marker.label) else "start"
        parts.append(
            f'<g class="registry-marker registry-marker-{text(marker.kind or "other")}">'
            f"<title>{text(marker.label)} at {_utc(marker.at):%Y-%m-%d %H:%M:%S} UTC</title>"
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 2 - 13 * (index % 2):.1f}" y2="{bottom:.1f}" '
            f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="5 3"/>'
            f'<text x="{x + (3 if anchor == "start" else -3):.1f}" y="{label_y:.1f}" text-anchor="{anchor}" '
            f'fill="{colour}" font-size="11">{text(marker.label)}</text></g>'
        )
    for line, colour in zip(drawn, colours, strict=True):
        coordinates = [(x_of(t), y_of(v)) for t, v in line.points]
        path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f} {y:.1f}" for i, (x, y) in enumerate(coordinates))
        parts.append(
            f'<g class="registry-series" data-series="{text(line.label)}">'
            f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round"/>'
        )
        visible = len(line.points) <= POINTS_MARKED
        for i, ((x, y), (moment, value)) in enumerate(zip(coordinates, line.points, strict=True)):
            note = f" ({line.notes[i]})" if line.notes else ""
            parts.append(
                f'<circle class="registry-point" cx="{x:.1f}" cy="{y:.1f}" r="{3 if visible else 2.5}" '
                f'fill="{colour}" fill-opacity="{1 if visible else 0}"><title>{text(line.label)}: {number(value)} at '
                f"{_utc(moment):%Y-%m-%d %H:%M} UTC{text(note)}</title></circle>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return mark_safe("".join(parts))


# --- Bars ---------------------------------------------------------------------------------------------
def _bar_panel(
    values: Sequence[float | None],
    labels: Sequence[str],
    colours: Sequence[str],
    *,
    left: float,
    right: float,
    top: float,
    bottom: float,
    group: str,
    axis_label: str,
    category_labels: bool,
    best: Collection[int] = (),
) -> list[str]:
    """Bars of `values` between left and right on their own scale, the scale's ticks at the left."""
    present = [v for v in values if v is not None]
    ticks = nice_ticks(min(0.0, *present), max(0.0, *present), count=4)

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * _fraction(value, ticks[0], ticks[-1])

    parts = _y_axis(ticks, y_of, left, right, axis_label, top, bottom)
    slot = (right - left) / len(values)
    gap = max(min(slot * 0.2, 12), slot - MAX_BAR_WIDTH)
    zero = y_of(0.0)
    labelled = slot >= CHAR_WIDTH * 7
    crowded = slot < CHAR_WIDTH * min(LABEL_CHARS, max((len(label) for label in labels), default=0)) + 4
    for index, (value, label, colour) in enumerate(zip(values, labels, colours, strict=True)):
        x = left + slot * index + gap / 2
        name = f"{group}: {label}" if group else label
        if value is None:
            parts.append(
                f'<text class="registry-no-value" x="{x + (slot - gap) / 2:.1f}" y="{zero - 4:.1f}" '
                f'text-anchor="middle" fill-opacity="0.6"><title>{text(name)}: no value</title>–</text>'
            )
        else:
            y = min(y_of(value), zero)
            height = max(abs(zero - y_of(value)), 1.0)
            star = " (best)" if index in best else ""
            parts.append(
                f'<rect class="registry-bar" x="{x:.1f}" y="{y:.1f}" width="{slot - gap:.1f}" '
                f'height="{height:.1f}" fill="{colour}"><title>{text(name)}: {number(value)}{star}</title></rect>'
            )
            if labelled:
                above = y_of(value) - 4 if value >= 0 else y_of(value) + 13
                weight = ' font-weight="bold"' if star else ""
                parts.append(
                    f'<text class="registry-bar-value" x="{x + (slot - gap) / 2:.1f}" y="{above:.1f}" '
                    f'text-anchor="middle" font-size="11"{weight}>{"★ " if star else ""}{number(value)}</text>'
                )
        if category_labels:
            short = label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"
            cx, cy = x + (slot - gap) / 2, bottom + 14
            if crowded:
                parts.append(
                    f'<text class="registry-category" x="{cx:.1f}" y="{cy:.1f}" text-anchor="end" '
                    f'transform="rotate(-40 {cx:.1f} {cy:.1f})"><title>{text(label)}</title>{text(short)}</text>'
                )
            else:
                parts.append(
                    f'<text class="registry-category" x="{cx:.1f}" y="{cy:.1f}" text-anchor="middle">'
                    f"<title>{text(label)}</title>{text(short)}</text>"
                )
    return parts


def bar_chart(
    *,
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    y_label: str = "",
    description: str = "",
    height: int = 260,
) -> SafeString:
    """One bar per category, in the order given (a metric across versions); None is a gap marked "–"."""
    if len(labels) != len(values):
        raise ValueError("one value per label")
    if all(v is None for v in values):
        return no_data(title)
    top, bottom = 36.0, 36.0 + height
    longest = min(LABEL_CHARS, max(len(label) for label in labels))
    crowded = (WIDTH - 86) / len(labels) < CHAR_WIDTH * longest + 4
    total_height = bottom + (CHAR_WIDTH * longest * 0.7 + 24 if crowded else 30)
    summary = ", ".join(f"{label} {_value_text(v)}" for label, v in zip(labels, values, strict=True))
    parts = _open(title, f"{description} {summary}.".strip(), total_height, "bars")
    parts += _bar_panel(
        values,
        labels,
        [PALETTE[0]] * len(values),
        left=70.0,
        right=WIDTH - 16.0,
        top=top,
        bottom=bottom,
        group="",
        axis_label=y_label,
        category_labels=True,
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def grouped_bar_chart(
    *,
    title: str,
    groups: Sequence[str],
    series: Sequence[BarSeries],
    best: Sequence[Collection[int]] | None = None,
    description: str = "",
    height: int = 220,
) -> SafeString:
    """A panel per group (a metric) with a bar per series (a version) in it, each panel on its own scale
    (its ticks at its left), the group's name under it and the series in the legend. `best`: per group,
    the indexes of the series whose bar is marked best (★ on its value)."""
    if any(len(s.values) != len(groups) for s in series):
        raise ValueError("one value per group in each series")
    shown = [i for i in range(len(groups)) if any(s.values[i] is not None for s in series)]
    if not shown or not series:
        return no_data(title)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    legend, legend_height = _legend([s.label for s in series], 40, colours)
    top = 40 + legend_height + 8
    per_row = max(1, min(len(shown), int(WIDTH // max(150, 40 + 28 * len(series)))))
    rows = math.ceil(len(shown) / per_row)
    row_height = height + 56
    total_height = top + rows * row_height
    summary = "; ".join(
        f"{groups[i]}: " + ", ".join(f"{s.label} {_value_text(s.values[i])}" for s in series) for i in shown
    )
    parts = _open(title, f"{description} {summary}.".strip(), total_height, "grouped")
    parts += legend
    width = WIDTH / per_row
    for position, i in enumerate(shown):
        row, column = divmod(position, per_row)
        panel_top = top + row * row_height
        left = column * width + 56
        panel_right = (column + 1) * width - 12
        parts.append(f'<g class="registry-group" data-group="{text(groups[i])}">')
        parts += _bar_panel(
            [s.values[i] for s in series],
            [s.label for s in series],
            colours,
            left=left,
            right=panel_right,
            top=panel_top,
            bottom=panel_top + height,
            group=groups[i],
            axis_label="",
            category_labels=False,
            best=best[i] if best else (),
        )
        parts.append(
            f'<text class="registry-group-label" x="{(left + panel_right) / 2:.1f}" y="{panel_top + height + 20:.1f}" '
            f'text-anchor="middle" font-weight="bold">{text(groups[i])}</text></g>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))
