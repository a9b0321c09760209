"""Numbers, axis ticks and the inline-SVG line and box charts."""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gan_jax.report.reading import thin

MAX_POINTS = 1200  # per curve; longer ones are thinned (the last point kept)

# --- numbers --------------------------------------------------------------------------


def number(value: Any) -> float | None:
    """A finite int or float as a float; None for anything else (null, NaN, bool, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    spacing = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / spacing - 1e-9) * spacing
    ticks = []
    value = first
    while value <= high + spacing * 1e-9:
        ticks.append(round(value, 12))
        value += spacing
    return ticks


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """The shortest labels (4 to 12 significant digits) that tell the ticks apart and say each one's value."""
    spacing = min((b - a for a, b in zip(ticks, ticks[1:], strict=False)), default=0.0)
    for digits in range(4, 13):
        labels = [f"{t:.{digits}g}" if not float(t).is_integer() or abs(t) >= 1e15 else str(int(t)) for t in ticks]
        exact = all(abs(float(label) - t) <= spacing * 0.01 for label, t in zip(labels, ticks, strict=True))
        if len(set(labels)) == len(labels) and exact:
            return labels
    return labels


def _padded(low: float, high: float) -> tuple[float, float]:
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.06
    return low - pad, high + pad


def _scale(low: float, high: float, start: float, end: float) -> Callable[[float], float]:
    span = high - low
    return lambda v: start + (v - low) / span * (end - start) if span else (start + end) / 2


# --- SVG charts -----------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One curve: `points` (x, y or None: a gap), its colour; `legend` (None: not in the
    legend, as the second to last member of a population), `title` shown on hover."""

    points: list[tuple[float, float | None]]
    colour: str
    legend: str | None
    title: str
    line: bool = True
    markers: bool = False
    width: float = 1.6
    opacity: float = 1.0


CHART_W, CHART_H = 560, 250
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 12, 38


def _path_data(points: Sequence[tuple[float, float | None]], x_of: Callable, y_of: Callable) -> str:
    commands, pen_down = [], False
    for x, y in points:
        if y is None:
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{x_of(x):.1f},{y_of(y):.1f}")
        pen_down = True
    return " ".join(commands)


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _axes(
    x_range: tuple[float, float], y_range: tuple[float, float], x_of: Callable, y_of: Callable, left: float
) -> list[str]:
    parts = [
        f'<rect class="frame" x="{left}" y="{TOP}" width="{CHART_W - left - RIGHT}" '
        f'height="{CHART_H - TOP - BOTTOM}" fill="none" stroke="#999"/>'
    ]
    y_ticks = nice_ticks(*y_range)
    for tick, label in zip(y_ticks, tick_labels(y_ticks), strict=True):
        y = y_of(tick)
        parts.append(f'<line x1="{left}" x2="{CHART_W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(label)}</text>')
    x_ticks = nice_ticks(*x_range)
    for tick, label in zip(x_ticks, tick_labels(x_ticks), strict=True):
        x = x_of(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{CHART_H - BOTTOM}" y2="{CHART_H - BOTTOM + 4}" stroke="#999"/>'
        )
        parts.append(f'<text x="{x:.1f}" y="{CHART_H - BOTTOM + 17}" text-anchor="middle">{esc(label)}</text>')
    return parts


def y_axis_width(y_range: tuple[float, float]) -> float:
    """Room left of the plot for the y tick labels (and the rotated axis label)."""
    longest = max((len(label) for label in tick_labels(nice_ticks(*y_range))), default=1)
    return max(LEFT, 6.4 * longest + 28)


def _series_svg(series: Series, x_of: Callable, y_of: Callable, y_range: tuple[float, float]) -> list[str]:
    points = thin([(x, None if y is None else _clamp(y, *y_range)) for x, y in series.points], MAX_POINTS)
    title = f"<title>{esc(series.title)}</title>"
    parts = []
    if series.line and (d := _path_data(points, x_of, y_of)):
        parts.append(
            f'<path class="series" d="{d}" fill="none" stroke="{series.colour}" stroke-width="{series.width}" '
            f'stroke-opacity="{series.opacity}" stroke-linejoin="round">{title}</path>'
        )
    if series.markers:
        parts += [
            f'<circle class="marker" cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="3" fill="{series.colour}" '
            f'fill-opacity="{series.opacity}">{title}</circle>'
            for x, y in points
            if y is not None
        ]
    return parts


def _legend(series: Sequence[Series], hline: tuple[float, str] | None) -> str:
    items, seen = [], set()
    for s in series:
        if s.legend is None or s.legend in seen:
            continue
        seen.add(s.legend)
        mark = (
            f'<line x1="1" x2="21" y1="5" y2="5" stroke="{s.colour}" stroke-width="2.5"/>'
            if s.line
            else f'<circle cx="11" cy="5" r="3.5" fill="{s.colour}"/>'
        )
        swatch = f'<svg width="22" height="10">{mark}</svg>'
        items.append(f"<li>{swatch}{esc(s.legend)}</li>")
    if hline is not None:
        items.append(
            '<li><svg width="22" height="10"><line x1="1" x2="21" y1="5" y2="5" stroke="#000" '
            f'stroke-dasharray="5 3" stroke-width="1.5"/></svg>{esc(hline[1])}</li>'
        )
    return f'<ul class="legend">{"".join(items)}</ul>' if items else ""


def empty_chart(title: str, message: str) -> str:
    return f'<figure class="chart empty"><figcaption>{esc(title)}</figcaption><p>{esc(message)}</p></figure>'


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    y_label: str = "",
    x_label: str = "step",
    hline: tuple[float, str] | None = None,
    y_range: tuple[float, float] | None = None,
) -> str:
    """An inline-SVG line chart; `hline` (value, label) is drawn dashed (the 0.5 line)."""
    drawn = [s for s in series if any(y is not None for _, y in s.points)]
    if not drawn:
        return empty_chart(title, "no values yet")
    xs = [x for s in drawn for x, y in s.points if y is not None]
    ys = [y for s in drawn for _, y in s.points if y is not None] + ([hline[0]] if hline else [])
    low_x = min(0.0, min(xs)) if x_label == "step" else min(xs)  # training starts at step 0
    x_range = (low_x, max(xs)) if max(xs) > low_x else (low_x - 1, max(xs) + 1)
    y_range = y_range or _padded(min(ys), max(ys))
    left = y_axis_width(y_range)
    x_of = _scale(*x_range, left, CHART_W - RIGHT)
    y_of = _scale(*y_range, CHART_H - BOTTOM, TOP)
    parts = _axes(x_range, y_range, x_of, y_of, left)
    if hline is not None:
        y = y_of(hline[0])
        parts.append(
            f'<line class="equilibrium" x1="{left}" x2="{CHART_W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#000" stroke-width="1.2" stroke-dasharray="6 4"><title>{esc(hline[1])}</title></line>'
        )
    for s in drawn:
        parts += _series_svg(s, x_of, y_of, y_range)
    parts.append(
        f'<text x="{(left + CHART_W - RIGHT) / 2:.0f}" y="{CHART_H - 4}" text-anchor="middle">{esc(x_label)}</text>'
    )
    if y_label:
        middle = (TOP + CHART_H - BOTTOM) / 2
        parts.append(
            f'<text transform="translate(13,{middle:.0f}) rotate(-90)" text-anchor="middle">{esc(y_label)}</text>'
        )
    svg = (
        f'<svg class="plot" viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{esc(title)}">'
        + "".join(parts)
        + "</svg>"
    )
    return f'<figure class="chart"><figcaption>{esc(title)}</figcaption>{svg}{_legend(drawn, hline)}</figure>'


@dataclass(frozen=True)
class BoxStats:
    low: float  # the whiskers: the furthest values within 1.5 IQR of the box
    q1: float
    median: float
    q3: float
    high: float
    mean: float
    outliers: list[float]


def box_stats(values: Sequence[float]) -> BoxStats:
    """Tukey's box (quartiles by linear interpolation, as matplotlib's boxplot draws them)."""
    ordered = sorted(values)
    q1, median, q3 = (_quantile(ordered, q) for q in (0.25, 0.5, 0.75))
    reach = 1.5 * (q3 - q1)
    inside = [v for v in ordered if q1 - reach <= v <= q3 + reach]
    return BoxStats(
        low=min(inside),
        q1=q1,
        median=median,
        q3=q3,
        high=max(inside),
        mean=statistics.fmean(ordered),
        outliers=[v for v in ordered if v < q1 - reach or v > q3 + reach],
    )


def _quantile(ordered: Sequence[float], q: float) -> float:
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def box_chart(
    title: str,
    groups: Sequence[tuple[str, Sequence[float]]],
    subtitle: str = "",
    reference: tuple[float, str] | None = None,
) -> str:
    """Horizontal inline-SVG box plots, one per group (its label on the left), every value a
    dot; `reference` (value, label) is drawn dashed (0.5 for D's outputs)."""
    values = [v for _, vs in groups for v in vs]
    if not values:
        return empty_chart(title, "no finished run has this metric")
    label_w = min(max(len(label) for label, _ in groups) * 6.6 + 12, 330)
    row_h, plot_w, top, bottom = 34, 420, 10, 34
    width, height = label_w + plot_w + 16, top + row_h * len(groups) + bottom
    shown = values + ([reference[0]] if reference else [])
    x_range = _padded(min(shown), max(shown))
    x_of = _scale(*x_range, label_w, label_w + plot_w)
    parts = [
        f'<rect x="{label_w}" y="{top}" width="{plot_w}" height="{row_h * len(groups)}" fill="none" stroke="#999"/>'
    ]
    ticks = nice_ticks(*x_range)
    for tick, label in zip(ticks, tick_labels(ticks), strict=True):
        x = x_of(tick)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - bottom}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{esc(label)}</text>')
    if reference is not None:
        x = x_of(reference[0])
        parts.append(
            f'<line class="equilibrium" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - bottom}" stroke="#000" '
            f'stroke-width="1.2" stroke-dasharray="6 4"><title>{esc(reference[1])}</title></line>'
        )
    for index, (label, group_values) in enumerate(groups):
        middle = top + row_h * index + row_h / 2
        parts.append(f'<text x="{label_w - 8}" y="{middle + 4:.1f}" text-anchor="end">{esc(label)}</text>')
        parts += _box_svg(list(group_values), x_of, middle, label, label_w)
    svg = (
        f'<svg class="plot box" viewBox="0 0 {width:.0f} {height}" role="img" aria-label="{esc(title)}">'
        + "".join(parts)
        + "</svg>"
    )
    caption = esc(title) + (f' <span class="muted">{esc(subtitle)}</span>' if subtitle else "")
    return f'<figure class="chart"><figcaption>{caption}</figcaption>{svg}</figure>'


def _box_svg(values: list[float], x_of: Callable, middle: float, label: str, left: float) -> list[str]:
    if not values:
        return [f'<text class="muted" x="{left + 8:.1f}" y="{middle + 4:.1f}">no finished run</text>']
    stats = box_stats(values)
    half = 9
    summary_title = (
        f"{label}: n={len(values)}, median {fmt(stats.median)}, mean {fmt(stats.mean)}, "
        f"quartiles {fmt(stats.q1)} to {fmt(stats.q3)}"
    )
    parts = [
        f'<line x1="{x_of(stats.low):.1f}" x2="{x_of(stats.high):.1f}" y1="{middle:.1f}" y2="{middle:.1f}" '
        'stroke="#444"/>',
        *(
            f'<line x1="{x_of(v):.1f}" x2="{x_of(v):.1f}" y1="{middle - half / 2:.1f}" y2="{middle + half / 2:.1f}" '
            'stroke="#444"/>'
            for v in (stats.low, stats.high)
        ),
        f'<rect class="box" x="{x_of(stats.q1):.1f}" y="{middle - half:.1f}" '
        f'width="{max(x_of(stats.q3) - x_of(stats.q1), 1):.1f}" height="{2 * half}" fill="#cfe2f3" stroke="#1f77b4">'
        f"<title>{esc(summary_title)}</title></rect>",
        f'<line class="median" x1="{x_of(stats.median):.1f}" x2="{x_of(stats.median):.1f}" '
        f'y1="{middle - half:.1f}" y2="{middle + half:.1f}" stroke="#d62728" stroke-width="2"/>',
        f'<path class="mean" d="M{x_of(stats.mean):.1f},{middle - 4:.1f} l4,4 l-4,4 l-4,-4 z" fill="#2ca02c">'
        f"<title>mean {esc(fmt(stats.mean))}</title></path>",
    ]
    parts += [
        f'<circle class="value" cx="{x_of(v):.1f}" cy="{middle + half + 4:.1f}" r="2.2" fill="#333" fill-opacity="0.6">'
        f"<title>{esc(fmt(v))}</title></circle>"
        for v in values
    ]
    return parts
