"""SVG charts drawn on the server, so one chart serves the page, the PDF report and the printout.

Every function returns a complete, well-formed `<svg>` string: `role="img"` with `<title>` and `<desc>`, all text
XML-escaped (safe to embed with `{{ svg | safe }}`), and the same output for the same input. Numbers are
formatted in the request's language unless a `value_format` is given.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from babel.numbers import format_decimal

from kotacerdas.i18n import _, get_locale

# Each colour has at least 3:1 contrast with white (WCAG 1.4.11 for graphics) and they stay apart for the
# common colour-vision deficiencies (after Okabe–Ito, darkened for contrast).
DEFAULT_PALETTE = (
    "#0b5394",  # blue
    "#b45309",  # orange
    "#047857",  # green
    "#7b3f99",  # purple
    "#b91c1c",  # red
    "#0e7490",  # cyan
    "#6b4f2a",  # brown
    "#4b5563",  # grey
)
TEXT_COLOUR = "#1f2933"  # 14:1 on white
MUTED_COLOUR = "#4b5563"  # 7.6:1 on white
GRID_COLOUR = "#d5dbe1"
AXIS_COLOUR = "#6b7785"
FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', sans-serif"
FONT_SIZE = 12
# Average glyph width relative to the font size, to fit labels without measuring text.
CHAR_WIDTH = 0.6

Number = int | float
Data = Mapping[str, Number] | Iterable[tuple[str, Number]]

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _esc(text: object) -> str:
    """Text safe inside an XML element or a double-quoted attribute (characters XML forbids are dropped)."""
    cleaned = _INVALID_XML.sub("", str(text))
    return (
        cleaned.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def _n(value: float) -> str:
    """A coordinate with at most two decimals, so the output is short and identical on every run."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _pairs(data: Data) -> list[tuple[str, float]]:
    items = data.items() if isinstance(data, Mapping) else data
    pairs = []
    for label, value in items:
        number = float(value) if value is not None else 0.0
        pairs.append((str(label), number if math.isfinite(number) else 0.0))
    return pairs


def format_number(value: float) -> str:
    """A number in the current language (1.234,5 in Indonesian, 1,234.5 in English), at most 2 decimals."""
    return format_decimal(round(value, 2), format="#,##0.##", locale=get_locale())


def _truncate(label: str, max_chars: int) -> str:
    if len(label) <= max_chars:
        return label
    return label[: max(1, max_chars - 1)].rstrip() + "…"


def _text_width(text: str, size: float = FONT_SIZE) -> float:
    return len(text) * size * CHAR_WIDTH


def nice_ticks(low: float, high: float, *, max_ticks: int = 6, integer: bool = False) -> list[float]:
    """Round axis ticks (steps of 1, 2, 2.5 or 5 times a power of ten) covering `low`..`high`."""
    if low > high:
        low, high = high, low
    if low == high:
        if low == 0:
            high = 1.0
        elif low > 0:
            low = 0.0
        else:
            high = 0.0
    raw_step = (high - low) / max(1, max_ticks - 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = magnitude * 10
    for factor in (1, 2, 2.5, 5, 10):
        # A step of 0.25 or 2.5 makes odd ticks for counts; whole-number data gets whole-number steps.
        if integer and (magnitude * factor) % 1:
            continue
        if magnitude * factor >= raw_step * (1 - 1e-9):
            step = magnitude * factor
            break
    if integer:
        step = max(1.0, step)
    start = math.floor(low / step + 1e-9) * step
    ticks = []
    index = 0
    while True:
        tick = round(start + index * step, 10)
        ticks.append(0.0 if tick == 0 else tick)
        if tick >= high - 1e-9 * step:
            break
        index += 1
    return ticks


def _chart_id(kind: str, title: str, payload: object) -> str:
    digest = hashlib.sha1(f"{kind}|{title}|{payload!r}".encode()).hexdigest()[:10]
    return f"chart-{digest}"


def _open(
    kind: str, chart_id: str, width: float, height: float, title: str, description: str, show_title: bool
) -> list[str]:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" id="{_esc(chart_id)}" '
        f'width="{_n(width)}" height="{_n(height)}" viewBox="0 0 {_n(width)} {_n(height)}" role="img" '
        f'aria-labelledby="{_esc(chart_id)}-title {_esc(chart_id)}-desc" '
        f'font-family="{_esc(FONT_FAMILY)}" font-size="{FONT_SIZE}">',
        f'<title id="{_esc(chart_id)}-title">{_esc(title)}</title>',
        f'<desc id="{_esc(chart_id)}-desc">{_esc(description)}</desc>',
    ]
    if show_title:
        parts.append(
            f'<text x="{_n(width / 2)}" y="18" text-anchor="middle" font-size="14" font-weight="600" '
            f'fill="{TEXT_COLOUR}">{_esc(title)}</text>'
        )
    return parts


def _empty_svg(
    kind: str, chart_id: str, width: float, height: float, title: str, empty_text: str | None, show_title: bool
) -> str:
    text = empty_text if empty_text is not None else _("No data")
    parts = _open(kind, chart_id, width, height, title, text, show_title)
    parts.append(
        f'<rect x="0.5" y="0.5" width="{_n(width - 1)}" height="{_n(height - 1)}" fill="none" '
        f'stroke="{GRID_COLOUR}" stroke-dasharray="4 4"/>'
    )
    parts.append(
        f'<text class="no-data" x="{_n(width / 2)}" y="{_n(height / 2)}" text-anchor="middle" '
        f'dominant-baseline="middle" fill="{MUTED_COLOUR}">{_esc(text)}</text>'
    )
    return _close(parts)


def _describe(pairs: Sequence[tuple[str, float]], fmt: Callable[[float], str], unit: str) -> str:
    suffix = f" {unit}" if unit else ""
    return "; ".join(f"{label}: {fmt(value)}{suffix}" for label, value in pairs)


def _value_grid(
    parts: list[str],
    ticks: Sequence[float],
    tick_texts: Sequence[str],
    y_of: Callable[[float], float],
    left: float,
    right: float,
) -> None:
    """Horizontal grid lines from `left` to `right` at the value ticks (the zero line darker), labelled on the left."""
    for tick, text in zip(ticks, tick_texts, strict=True):
        y = y_of(tick)
        colour = AXIS_COLOUR if tick == 0 else GRID_COLOUR
        parts.append(f'<line x1="{_n(left)}" y1="{_n(y)}" x2="{_n(right)}" y2="{_n(y)}" stroke="{colour}"/>')
        parts.append(
            f'<text x="{_n(left - 6)}" y="{_n(y)}" text-anchor="end" dominant-baseline="middle" '
            f'fill="{MUTED_COLOUR}">{_esc(text)}</text>'
        )


def _value_label(x: float, y: float, value: float, text: str, gap: float) -> str:
    """`text` centred `gap` above the point (x, y), or below it for a negative value."""
    label_y = y - gap if value >= 0 else y + gap
    baseline = "auto" if value >= 0 else "hanging"
    return (
        f'<text class="value" x="{_n(x)}" y="{_n(label_y)}" text-anchor="middle" '
        f'dominant-baseline="{baseline}" fill="{TEXT_COLOUR}">{_esc(text)}</text>'
    )


def _bar_rect(x: float, y: float, width: float, height: float, colour: str, value: float) -> str:
    return (
        f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(width)}" height="{_n(height)}" fill="{_esc(colour)}" '
        f'data-value="{_esc(repr(value))}"/>'
    )


def _key(x: float, y: float, colour: str, text: str, gap: float) -> str:
    """A legend entry: a 12 px colour square at (x, y) and its text `gap` to the right of the square's left edge."""
    return (
        f'<rect x="{_n(x)}" y="{_n(y)}" width="12" height="12" fill="{_esc(colour)}"/>'
        f'<text x="{_n(x + gap)}" y="{_n(y + 6)}" dominant-baseline="middle" fill="{TEXT_COLOUR}">{_esc(text)}</text>'
    )


def _close(parts: list[str]) -> str:
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(
    data: Data,
    *,
    title: str,
    description: str | None = None,
    width: int = 640,
    height: int | None = None,
    colours: Sequence[str] | None = None,
    horizontal: bool = False,
    unit: str = "",
    value_format: Callable[[float], str] | None = None,
    empty_text: str | None = None,
    chart_id: str | None = None,
    show_title: bool = False,
) -> str:
    """A bar chart of (label, value) pairs; bars grow from zero, so negative values point the other way.

    One colour is used for every bar unless several `colours` are given (then they repeat bar by bar).
    `height` defaults to 320 for vertical bars and to what the bars need for horizontal ones.
    """
    pairs = _pairs(data)
    fmt = value_format or format_number
    chart_id = chart_id or _chart_id("bar", title, pairs)
    if height is None:
        height = 320 if not horizontal else max(120, 28 * len(pairs) + 48 + (24 if show_title else 0))
    if not pairs:
        return _empty_svg("bar", chart_id, width, height, title, empty_text, show_title)
    colours = tuple(colours or DEFAULT_PALETTE[:1])
    values = [value for _label, value in pairs]
    integer = all(float(value).is_integer() for value in values)
    ticks = nice_ticks(min(0.0, *values), max(0.0, *values), max_ticks=6, integer=integer)
    suffix = f" {unit}" if unit else ""
    value_texts = [fmt(value) + suffix for value in values]
    parts = _open("bar", chart_id, width, height, title, description or _describe(pairs, fmt, unit), show_title)
    top = 28 if show_title else 10
    if horizontal:
        _horizontal_bars(parts, pairs, value_texts, ticks, colours, fmt, width, height, top)
    else:
        _vertical_bars(parts, pairs, value_texts, ticks, colours, fmt, width, height, top)
    return _close(parts)


def _vertical_bars(parts, pairs, value_texts, ticks, colours, fmt, width, height, top) -> None:
    low, high = ticks[0], ticks[-1]
    tick_texts = [fmt(tick) for tick in ticks]
    left = 8 + max(_text_width(text) for text in tick_texts)
    right, bottom = 8, 28
    top += 16  # room for the value label above the tallest bar
    plot_w, plot_h = width - left - right, height - top - bottom
    scale = plot_h / (high - low)

    def y_of(value: float) -> float:
        return top + (high - value) * scale

    parts.append('<g class="axis">')
    _value_grid(parts, ticks, tick_texts, y_of, left, width - right)
    parts.append("</g>")
    slot = plot_w / len(pairs)
    bar_w = max(1.0, min(slot * 0.7, 64.0))
    max_chars = max(1, int(slot / (FONT_SIZE * CHAR_WIDTH)))
    zero = y_of(0.0)
    parts.append('<g class="bars">')
    for index, ((label, value), value_text) in enumerate(zip(pairs, value_texts, strict=True)):
        x = left + slot * index + (slot - bar_w) / 2
        y_end = y_of(value)
        y, bar_h = min(zero, y_end), abs(zero - y_end)
        colour = colours[index % len(colours)]
        centre = x + bar_w / 2
        parts.append(f'<g class="bar"><title>{_esc(label)}: {_esc(value_text)}</title>')
        parts.append(_bar_rect(x, y, bar_w, bar_h, colour, value))
        parts.append(_value_label(centre, y_end, value, value_text, gap=5))
        parts.append(
            f'<text class="label" x="{_n(centre)}" y="{_n(height - bottom + 16)}" text-anchor="middle" '
            f'fill="{TEXT_COLOUR}">{_esc(_truncate(label, max_chars))}</text></g>'
        )
    parts.append("</g>")


def _horizontal_bars(parts, pairs, value_texts, ticks, colours, fmt, width, height, top) -> None:
    low, high = ticks[0], ticks[-1]
    max_label_w = width * 0.45
    label_w = min(max_label_w, max(_text_width(label) for label, _value in pairs))
    max_chars = max(1, int(label_w / (FONT_SIZE * CHAR_WIDTH)))
    value_w = max(_text_width(text) for text in value_texts) + 6
    left = 8 + label_w + 8
    # Value labels sit past the bar's end, so leave room on the side(s) where bars end.
    right = 8 + (value_w if high > 0 else 0)
    left += value_w if low < 0 else 0
    bottom = 24
    plot_w, plot_h = width - left - right, height - top - bottom
    scale = plot_w / (high - low)

    def x_of(value: float) -> float:
        return left + (value - low) * scale

    parts.append('<g class="axis">')
    for tick in ticks:
        x = x_of(tick)
        colour = AXIS_COLOUR if tick == 0 else GRID_COLOUR
        parts.append(f'<line x1="{_n(x)}" y1="{_n(top)}" x2="{_n(x)}" y2="{_n(top + plot_h)}" stroke="{colour}"/>')
        parts.append(
            f'<text x="{_n(x)}" y="{_n(top + plot_h + 16)}" text-anchor="middle" '
            f'fill="{MUTED_COLOUR}">{_esc(fmt(tick))}</text>'
        )
    parts.append("</g>")
    slot = plot_h / len(pairs)
    bar_h = max(1.0, min(slot * 0.7, 22.0))
    zero = x_of(0.0)
    parts.append('<g class="bars">')
    for index, ((label, value), value_text) in enumerate(zip(pairs, value_texts, strict=True)):
        y = top + slot * index + (slot - bar_h) / 2
        x_end = x_of(value)
        x, bar_w = min(zero, x_end), abs(zero - x_end)
        colour = colours[index % len(colours)]
        middle = y + bar_h / 2
        value_x, anchor = (x_end + 4, "start") if value >= 0 else (x_end - 4, "end")
        parts.append(f'<g class="bar"><title>{_esc(label)}: {_esc(value_text)}</title>')
        parts.append(
            f'<text class="label" x="{_n(8 + label_w)}" y="{_n(middle)}" text-anchor="end" '
            f'dominant-baseline="middle" fill="{TEXT_COLOUR}">{_esc(_truncate(label, max_chars))}</text>'
        )
        parts.append(_bar_rect(x, y, bar_w, bar_h, colour, value))
        parts.append(
            f'<text class="value" x="{_n(value_x)}" y="{_n(middle)}" text-anchor="{anchor}" '
            f'dominant-baseline="middle" fill="{TEXT_COLOUR}">{_esc(value_text)}</text></g>'
        )
    parts.append("</g>")


def line_chart(
    series: Mapping[str, Sequence[Number | None]] | Iterable[tuple[str, Sequence[Number | None]]],
    *,
    labels: Sequence[str],
    title: str,
    description: str | None = None,
    width: int = 640,
    height: int = 320,
    colours: Sequence[str] | None = None,
    unit: str = "",
    value_format: Callable[[float], str] | None = None,
    empty_text: str | None = None,
    chart_id: str | None = None,
    show_title: bool = False,
    references: Sequence[tuple[str, Number, str]] = (),
    markers: bool = True,
) -> str:
    """A line chart of one or more series over the categories `labels` (e.g. months); None leaves a gap.

    Each point carries a tooltip; the last point of every series is labelled with its value, and every
    point is when there is a single short series. `references` are (label, value, colour) drawn as dashed
    horizontal lines (thresholds), always inside the value axis; `markers=False` draws the lines without a circle
    per point, for long series whose SVG would otherwise grow by a circle and a tooltip per point, and labels the
    last value of the first series only (a band of min/avg/max series would stack three labels on one spot).
    """
    named = list(series.items() if isinstance(series, Mapping) else series)
    labels = [str(label) for label in labels]
    cleaned: list[tuple[str, list[float | None]]] = []
    for name, values in named:
        row: list[float | None] = []
        for index in range(len(labels)):
            value = values[index] if index < len(values) else None
            row.append(float(value) if value is not None and math.isfinite(float(value)) else None)
        cleaned.append((str(name), row))
    fmt = value_format or format_number
    chart_id = chart_id or _chart_id("line", title, (labels, cleaned))
    present = [value for _name, row in cleaned for value in row if value is not None]
    if not labels or not present:
        return _empty_svg("line", chart_id, width, height, title, empty_text, show_title)
    colours = tuple(colours or DEFAULT_PALETTE)
    suffix = f" {unit}" if unit else ""
    if description is None:
        description = " | ".join(
            f"{name}: "
            + "; ".join(
                f"{label} {fmt(value)}{suffix}" for label, value in zip(labels, row, strict=True) if value is not None
            )
            for name, row in cleaned
        )
    lines = [(str(name), float(value), colour) for name, value, colour in references if math.isfinite(float(value))]
    span = present + [value for _name, value, _colour in lines]
    integer = all(value.is_integer() for value in span)
    ticks = nice_ticks(min(0.0, *span), max(0.0, *span), max_ticks=6, integer=integer)
    low, high = ticks[0], ticks[-1]
    tick_texts = [fmt(tick) for tick in ticks]
    parts = _open("line", chart_id, width, height, title, description, show_title)
    top = 28 if show_title else 10
    if len(cleaned) > 1:
        x = 8.0
        parts.append('<g class="legend">')
        for index, (name, _row) in enumerate(cleaned):
            parts.append(_key(x, top, colours[index % len(colours)], name, gap=16))
            x += 16 + _text_width(name) + 16
        parts.append("</g>")
        top += 22
    top += 14
    left = 8 + max(_text_width(text) for text in tick_texts)
    last_value_w = max(_text_width(fmt(value) + suffix) for value in present)
    right = 8 + last_value_w / 2
    bottom = 28
    plot_w, plot_h = width - left - right, height - top - bottom
    step_x = plot_w / max(1, len(labels) - 1)
    scale = plot_h / (high - low)

    def x_of(index: int) -> float:
        return left + (step_x * index if len(labels) > 1 else plot_w / 2)

    def y_of(value: float) -> float:
        return top + (high - value) * scale

    parts.append('<g class="axis">')
    _value_grid(parts, ticks, tick_texts, y_of, left, width - right)
    # Show every n-th category label so that they do not overlap; the last one is always shown.
    widest = max(_text_width(label) for label in labels) + 8
    every = max(1, math.ceil(widest / max(step_x, 1.0))) if len(labels) > 1 else 1
    shown = list(range(0, len(labels), every))
    if shown[-1] != len(labels) - 1:
        if len(shown) > 1 and len(labels) - 1 - shown[-1] < every:
            shown.pop()
        shown.append(len(labels) - 1)
    for index in shown:
        parts.append(
            f'<text class="label" x="{_n(x_of(index))}" y="{_n(height - bottom + 16)}" text-anchor="middle" '
            f'fill="{TEXT_COLOUR}">{_esc(labels[index])}</text>'
        )
    parts.append("</g>")
    if lines:
        parts.append('<g class="references">')
        for name, value, colour in lines:
            y = y_of(value)
            parts.append(
                f'<line x1="{_n(left)}" y1="{_n(y)}" x2="{_n(width - right)}" y2="{_n(y)}" stroke="{_esc(colour)}" '
                f'stroke-width="1.5" stroke-dasharray="6 4" data-value="{_esc(repr(value))}"/>'
            )
            parts.append(
                f'<text x="{_n(left + 4)}" y="{_n(y - 4)}" fill="{TEXT_COLOUR}">'
                f"{_esc(name)} {_esc(fmt(value) + suffix)}</text>"
            )
        parts.append("</g>")
    label_all = markers and len(cleaned) == 1 and len(labels) <= 12
    for series_index, (name, row) in enumerate(cleaned):
        colour = _esc(colours[series_index % len(colours)])
        commands, pen_down = [], False
        for index, value in enumerate(row):
            if value is None:
                pen_down = False
                continue
            commands.append(f"{'L' if pen_down else 'M'}{_n(x_of(index))} {_n(y_of(value))}")
            pen_down = True
        parts.append(f'<g class="series" data-series="{_esc(name)}">')
        parts.append(
            f'<path d="{" ".join(commands)}" fill="none" stroke="{colour}" stroke-width="2.5" '
            f'stroke-linejoin="round" stroke-linecap="round"/>'
        )
        last = max((index for index, value in enumerate(row) if value is not None), default=-1)
        for index, value in enumerate(row):
            if value is None or (not markers and index != last):
                continue
            cx, cy = x_of(index), y_of(value)
            text = fmt(value) + suffix
            parts.append(
                f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="3.5" fill="{colour}" data-value="{_esc(repr(value))}">'
                f"<title>{_esc(name)}, {_esc(labels[index])}: {_esc(text)}</title></circle>"
            )
            if label_all or (index == last and (markers or series_index == 0)):
                parts.append(_value_label(cx, cy, value, text, gap=8))
        parts.append("</g>")
    return _close(parts)


def _point(cx: float, cy: float, radius: float, degrees: float) -> tuple[float, float]:
    # 0 degrees is 12 o'clock and angles grow clockwise, as a reader expects of a pie.
    radians = math.radians(degrees - 90)
    return cx + radius * math.cos(radians), cy + radius * math.sin(radians)


def _sector_path(cx: float, cy: float, outer: float, inner: float, start: float, end: float) -> str:
    # Two arcs of at most 180 degrees each, so a single 100 % slice is drawn too (one 360 degree arc is not).
    middle = (start + end) / 2
    o0, o1, o2 = (_point(cx, cy, outer, angle) for angle in (start, middle, end))
    i0, i1, i2 = (_point(cx, cy, inner, angle) for angle in (end, middle, start))
    r_o, r_i = _n(outer), _n(inner)
    return (
        f"M{_n(o0[0])} {_n(o0[1])} A{r_o} {r_o} 0 0 1 {_n(o1[0])} {_n(o1[1])} "
        f"A{r_o} {r_o} 0 0 1 {_n(o2[0])} {_n(o2[1])} L{_n(i0[0])} {_n(i0[1])} "
        f"A{r_i} {r_i} 0 0 0 {_n(i1[0])} {_n(i1[1])} A{r_i} {r_i} 0 0 0 {_n(i2[0])} {_n(i2[1])} Z"
    )


def donut_chart(
    data: Data,
    *,
    title: str,
    description: str | None = None,
    width: int = 480,
    height: int = 240,
    colours: Sequence[str] | None = None,
    unit: str = "",
    value_format: Callable[[float], str] | None = None,
    empty_text: str | None = None,
    centre_label: str = "",
    chart_id: str | None = None,
    show_title: bool = False,
) -> str:
    """A donut of parts of a whole with a legend (value and share); the total is written in the middle.

    Zero and negative parts are listed in the legend but take no arc; when no part is positive it shows
    the "no data" text.
    """
    pairs = _pairs(data)
    fmt = value_format or format_number
    chart_id = chart_id or _chart_id("donut", title, pairs)
    total = sum(value for _label, value in pairs if value > 0)
    legend_h = 22 * len(pairs) + 20 + (24 if show_title else 0)
    height = max(height, legend_h)
    if total <= 0:
        return _empty_svg("donut", chart_id, width, height, title, empty_text, show_title)
    colours = tuple(colours or DEFAULT_PALETTE)
    suffix = f" {unit}" if unit else ""

    def share(value: float) -> str:
        return format_decimal(round(100 * max(value, 0) / total, 1), format="0.#", locale=get_locale()) + "%"

    if description is None:
        description = "; ".join(f"{label}: {fmt(value)}{suffix} ({share(value)})" for label, value in pairs)
    parts = _open("donut", chart_id, width, height, title, description, show_title)
    top = 28 if show_title else 8
    diameter = min(height - top - 8, width * 0.5)
    outer = diameter / 2
    inner = outer * 0.6
    cx, cy = 8 + outer, top + (height - top - 8) / 2
    parts.append('<g class="slices">')
    cumulative = 0.0
    positive = [index for index, (_label, value) in enumerate(pairs) if value > 0]
    # A white edge separates neighbouring slices; a lone full ring would show it as a seam.
    separator = 'stroke="#ffffff" stroke-width="1" ' if len(positive) > 1 else ""
    for index, (label, value) in enumerate(pairs):
        if value <= 0:
            continue
        start = 360 * cumulative / total
        cumulative += value
        end = 360.0 if index == positive[-1] else 360 * cumulative / total
        colour = _esc(colours[index % len(colours)])
        parts.append(
            f'<path d="{_sector_path(cx, cy, outer, inner, start, end)}" fill="{colour}" {separator}'
            f'data-value="{_esc(repr(value))}" data-start="{start:.4f}" data-end="{end:.4f}">'
            f"<title>{_esc(label)}: {_esc(fmt(value) + suffix)} ({_esc(share(value))})</title></path>"
        )
    parts.append("</g>")
    total_text = fmt(total) + suffix
    parts.append(
        f'<text class="total" x="{_n(cx)}" y="{_n(cy - (6 if centre_label else 0))}" text-anchor="middle" '
        f'dominant-baseline="middle" font-size="18" font-weight="600" fill="{TEXT_COLOUR}">{_esc(total_text)}</text>'
    )
    if centre_label:
        parts.append(
            f'<text x="{_n(cx)}" y="{_n(cy + 12)}" text-anchor="middle" dominant-baseline="middle" '
            f'fill="{MUTED_COLOUR}">{_esc(_truncate(centre_label, int(inner * 2 / (FONT_SIZE * CHAR_WIDTH))))}</text>'
        )
    legend_x = 8 + diameter + 20
    max_chars = max(4, int((width - legend_x - 24) / (FONT_SIZE * CHAR_WIDTH)))
    legend_y = cy - (22 * len(pairs)) / 2
    parts.append('<g class="legend">')
    for index, (label, value) in enumerate(pairs):
        y = legend_y + 22 * index
        text = f"{label}: {fmt(value)}{suffix} ({share(value)})"
        parts.append(_key(legend_x, y + 3, colours[index % len(colours)], _truncate(text, max_chars), gap=18))
    parts.append("</g>")
    return _close(parts)


def stacked_bar_chart(
    rows: Mapping[str, Sequence[Number | None]] | Iterable[tuple[str, Sequence[Number | None]]],
    *,
    series: Sequence[str],
    title: str,
    description: str | None = None,
    width: int = 640,
    height: int | None = None,
    colours: Sequence[str] | None = None,
    unit: str = "",
    value_format: Callable[[float], str] | None = None,
    percent: bool = False,
    empty_text: str | None = None,
    chart_id: str | None = None,
    show_title: bool = False,
) -> str:
    """Horizontal bars, one per row, each split into the parts named by `series` (a legend above the bars).

    `rows` are (label, values in the order of `series`); negative, missing and non-finite values count as zero.
    Each bar ends with its total. With `percent`, every bar is as wide as the plot and its parts are shares of the
    row's total (a row whose total is zero stays empty). `height` defaults to what the rows need.
    """
    named = list(rows.items() if isinstance(rows, Mapping) else rows)
    names = [str(name) for name in series]
    cleaned: list[tuple[str, list[float]]] = []
    for label, values in named:
        row = []
        for index in range(len(names)):
            value = values[index] if index < len(values) else None
            number = float(value) if value is not None else 0.0
            row.append(number if math.isfinite(number) and number > 0 else 0.0)
        cleaned.append((str(label), row))
    fmt = value_format or format_number
    chart_id = chart_id or _chart_id("stacked", title, (names, cleaned, percent))
    colours = tuple(colours or DEFAULT_PALETTE)
    suffix = f" {unit}" if unit else ""
    top = 28 if show_title else 8
    # The legend wraps onto as many lines as the width needs.
    legend: list[tuple[float, float, int]] = []
    x, y = 8.0, float(top)
    for index, name in enumerate(names):
        entry_w = 16 + _text_width(name) + 16
        if x > 8 and x + entry_w > width - 8:
            x, y = 8.0, y + 20
        legend.append((x, y, index))
        x += entry_w
    legend_h = (y - top) + 20 + 8 if names else 0
    if height is None:
        height = int(top + legend_h + 28 * max(1, len(cleaned)) + 28)
    totals = [sum(row) for _label, row in cleaned]
    if not cleaned or not names or not any(totals):
        return _empty_svg("stacked", chart_id, width, height, title, empty_text, show_title)

    def share(value: float, total: float) -> str:
        return format_decimal(round(100 * value / total, 1), format="0.#", locale=get_locale()) + "%"

    if description is None:
        description = " | ".join(
            f"{label}: "
            + "; ".join(
                f"{name} {fmt(value)}{suffix}" + (f" ({share(value, total)})" if percent and total else "")
                for name, value in zip(names, row, strict=True)
            )
            for (label, row), total in zip(cleaned, totals, strict=True)
        )
    parts = _open("stacked", chart_id, width, height, title, description, show_title)
    parts.append('<g class="legend">')
    for key_x, key_y, index in legend:
        parts.append(_key(key_x, key_y, colours[index % len(colours)], names[index], gap=16))
    parts.append("</g>")
    top += legend_h
    ticks = [0.0, 25.0, 50.0, 75.0, 100.0] if percent else nice_ticks(0.0, max(totals), max_ticks=6)
    high = ticks[-1]
    tick_texts = [format_number(tick) + "%" if percent else fmt(tick) for tick in ticks]
    total_texts = [fmt(total) + suffix for total in totals]
    label_w = min(width * 0.35, max(_text_width(label) for label, _row in cleaned))
    max_chars = max(1, int(label_w / (FONT_SIZE * CHAR_WIDTH)))
    left = 8 + label_w + 8
    right = 8 + (max(_text_width(text) for text in total_texts) + 6 if not percent else _text_width(tick_texts[-1]) / 2)
    bottom = 24
    plot_w, plot_h = width - left - right, height - top - bottom
    scale = plot_w / high

    parts.append('<g class="axis">')
    for tick, text in zip(ticks, tick_texts, strict=True):
        tick_x = left + tick * scale
        colour = AXIS_COLOUR if tick == 0 else GRID_COLOUR
        parts.append(
            f'<line x1="{_n(tick_x)}" y1="{_n(top)}" x2="{_n(tick_x)}" y2="{_n(top + plot_h)}" stroke="{colour}"/>'
        )
        parts.append(
            f'<text x="{_n(tick_x)}" y="{_n(top + plot_h + 16)}" text-anchor="middle" '
            f'fill="{MUTED_COLOUR}">{_esc(text)}</text>'
        )
    parts.append("</g>")
    slot = plot_h / len(cleaned)
    bar_h = max(1.0, min(slot * 0.7, 22.0))
    parts.append('<g class="bars">')
    for index, ((label, row), total, total_text) in enumerate(zip(cleaned, totals, total_texts, strict=True)):
        bar_y = top + slot * index + (slot - bar_h) / 2
        middle = bar_y + bar_h / 2
        parts.append(f'<g class="bar" data-total="{_esc(repr(total))}">')
        parts.append(
            f'<text class="label" x="{_n(8 + label_w)}" y="{_n(middle)}" text-anchor="end" '
            f'dominant-baseline="middle" fill="{TEXT_COLOUR}">{_esc(_truncate(label, max_chars))}</text>'
        )
        start = 0.0
        for part_index, (name, value) in enumerate(zip(names, row, strict=True)):
            if value <= 0:
                continue
            amount = 100 * value / total if percent else value
            colour = colours[part_index % len(colours)]
            text = fmt(value) + suffix + (f" ({share(value, total)})" if percent else "")
            parts.append(
                f'<rect x="{_n(left + start * scale)}" y="{_n(bar_y)}" width="{_n(amount * scale)}" '
                f'height="{_n(bar_h)}" fill="{_esc(colour)}" data-value="{_esc(repr(value))}">'
                f"<title>{_esc(label)}, {_esc(name)}: {_esc(text)}</title></rect>"
            )
            start += amount
        if not percent:
            parts.append(
                f'<text class="value" x="{_n(left + total * scale + 4)}" y="{_n(middle)}" text-anchor="start" '
                f'dominant-baseline="middle" fill="{TEXT_COLOUR}">{_esc(total_text)}</text>'
            )
        parts.append("</g>")
    parts.append("</g>")
    return _close(parts)
