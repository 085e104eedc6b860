"""SVG charts: valid, accessible, escaped, proportional, and sensible with empty, zero or negative data."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest

from kotacerdas import charts
from kotacerdas.i18n import reset_locale, set_locale

SVG = "{http://www.w3.org/2000/svg}"
NASTY = "<script>alert('x')</script> & \"Co\""


@pytest.fixture(autouse=True)
def indonesian():
    token = set_locale("id")
    yield
    reset_locale(token)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(node.itertext()) for node in root.iter(f"{SVG}text")]


def rects(root: ET.Element) -> list[ET.Element]:
    return [rect for rect in root.iter(f"{SVG}rect") if rect.get("data-value") is not None]


ALL_CHARTS = {
    "bar": lambda data, **kw: charts.bar_chart(data, title="Judul", **kw),
    "hbar": lambda data, **kw: charts.bar_chart(data, title="Judul", horizontal=True, **kw),
    "line": lambda data, **kw: charts.line_chart(
        {"Seri": [value for _label, value in data]}, labels=[label for label, _value in data], title="Judul", **kw
    ),
    "donut": lambda data, **kw: charts.donut_chart(data, title="Judul", **kw),
}


@pytest.mark.parametrize("kind", ALL_CHARTS)
def test_every_chart_is_an_accessible_svg_image(kind):
    root = parse(ALL_CHARTS[kind]([("Januari", 3), ("Februari", 7)]))
    assert root.get("role") == "img"
    assert root.get("width") and root.get("height")
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title.text == "Judul"
    assert "Januari" in desc.text and "Februari" in desc.text
    # The accessible name and description point at the title and desc elements.
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"


@pytest.mark.parametrize("kind", ALL_CHARTS)
def test_labels_and_titles_are_escaped(kind):
    svg = ALL_CHARTS[kind]([(NASTY, 5), ("B & C", 2)])
    assert "<script>" not in svg
    root = parse(svg)
    everything = " ".join(texts(root)) + " ".join("".join(n.itertext()) for n in root.iter(f"{SVG}title"))
    assert "<script>alert('x')</script>" in everything
    assert "B & C" in everything


def test_title_is_escaped_too():
    svg = charts.bar_chart([("a", 1)], title="<b>Jalan & Jembatan</b>", description="1 < 2", show_title=True)
    root = parse(svg)
    assert root.find(f"{SVG}title").text == "<b>Jalan & Jembatan</b>"
    assert root.find(f"{SVG}desc").text == "1 < 2"


def test_characters_xml_forbids_are_dropped():
    parse(charts.bar_chart([("nul\x00 and bell\x07", 1)], title="t\x0b"))


@pytest.mark.parametrize("kind", ALL_CHARTS)
def test_same_input_gives_the_same_svg(kind):
    data = [("a", 1.5), ("b", 2.25), ("c", 0)]
    assert ALL_CHARTS[kind](data) == ALL_CHARTS[kind](data)


@pytest.mark.parametrize("kind", ALL_CHARTS)
def test_empty_data_is_a_valid_svg_saying_no_data(kind):
    root = parse(ALL_CHARTS[kind]([]))
    assert root.get("role") == "img"
    assert "Tidak ada data" in texts(root)
    assert root.find(f"{SVG}desc").text == "Tidak ada data"


def test_no_data_text_follows_the_language_and_can_be_replaced():
    token = set_locale("en")
    try:
        assert "No data" in texts(parse(charts.bar_chart([], title="t")))
    finally:
        reset_locale(token)
    assert "Belum ada laporan" in texts(parse(charts.bar_chart([], title="t", empty_text="Belum ada laporan")))


def test_vertical_bar_heights_are_proportional_to_values():
    root = parse(charts.bar_chart([("a", 10), ("b", 20), ("c", 5)], title="t"))
    heights = {rect.get("data-value"): float(rect.get("height")) for rect in rects(root)}
    assert heights["20.0"] == pytest.approx(2 * heights["10.0"], abs=0.02)
    assert heights["5.0"] == pytest.approx(heights["10.0"] / 2, abs=0.02)


def test_horizontal_bar_widths_are_proportional_to_values():
    root = parse(charts.bar_chart({"a": 3, "b": 12}, title="t", horizontal=True))
    widths = {rect.get("data-value"): float(rect.get("width")) for rect in rects(root)}
    assert widths["12.0"] == pytest.approx(4 * widths["3.0"], abs=0.02)


def test_negative_bars_hang_below_the_zero_line():
    root = parse(charts.bar_chart([("naik", 4), ("turun", -2)], title="t"))
    up, down = rects(root)
    zero = float(up.get("y")) + float(up.get("height"))
    assert float(down.get("y")) == pytest.approx(zero, abs=0.02)
    assert float(down.get("height")) == pytest.approx(float(up.get("height")) / 2, abs=0.02)


def test_all_zero_bars_still_draw_an_axis():
    root = parse(charts.bar_chart([("a", 0), ("b", 0)], title="t"))
    assert [float(rect.get("height")) for rect in rects(root)] == [0, 0]
    assert "1" in texts(root)  # the axis reaches 1 rather than collapsing to nothing


def test_value_labels_use_the_language_number_format():
    assert "1.234,5" in texts(parse(charts.bar_chart([("a", 1234.5)], title="t")))
    token = set_locale("en")
    try:
        assert "1,234.5" in texts(parse(charts.bar_chart([("a", 1234.5)], title="t")))
    finally:
        reset_locale(token)


def test_custom_value_format_and_colours_are_used():
    svg = charts.bar_chart([("a", 0.5), ("b", 0.25)], title="t", value_format=lambda v: f"{v:.0%}", colours=["#123456"])
    root = parse(svg)
    assert {"50%", "25%"} <= set(texts(root))
    assert {rect.get("fill") for rect in rects(root)} == {"#123456"}


@pytest.mark.parametrize(
    ("low", "high", "integer", "expected"),
    [
        (0, 19, True, [0, 5, 10, 15, 20]),
        (0, 5, True, [0, 1, 2, 3, 4, 5]),
        (0, 0.37, False, [0, 0.1, 0.2, 0.3, 0.4]),
        (-3.2, 7.9, False, [-5, -2.5, 0, 2.5, 5, 7.5, 10]),
        (0, 0, False, [0, 0.2, 0.4, 0.6, 0.8, 1]),
        (0, 1_234_567, True, [0, 250_000, 500_000, 750_000, 1_000_000, 1_250_000]),
    ],
)
def test_axis_ticks_are_round_and_cover_the_data(low, high, integer, expected):
    ticks = charts.nice_ticks(low, high, integer=integer)
    assert ticks == pytest.approx(expected)
    assert ticks[0] <= low and ticks[-1] >= high


def test_line_chart_breaks_at_missing_values_and_marks_every_point():
    root = parse(charts.line_chart({"Laporan": [1, 4, None, 8]}, labels=["Jan", "Feb", "Mar", "Apr"], title="t"))
    path = root.find(f".//{SVG}path")
    assert path.get("d").count("M") == 2  # a gap for March
    assert [circle.get("data-value") for circle in root.iter(f"{SVG}circle")] == ["1.0", "4.0", "8.0"]
    assert {"Jan", "Feb", "Mar", "Apr", "8"} <= set(texts(root))


def test_line_chart_with_several_series_has_a_legend():
    root = parse(charts.line_chart({"Masuk": [3, 5], "Selesai": [1, 4]}, labels=["Jan", "Feb"], title="t"))
    assert {"Masuk", "Selesai"} <= set(texts(root))
    assert len(root.findall(f".//{SVG}g[@class='series']")) == 2


def test_line_chart_heights_follow_values():
    root = parse(charts.line_chart({"s": [0, 10, 20]}, labels=["a", "b", "c"], title="t"))
    ys = [float(circle.get("cy")) for circle in root.iter(f"{SVG}circle")]
    assert ys[0] - ys[1] == pytest.approx(ys[1] - ys[2], abs=0.02)


ARC_POINT = re.compile(r"[ML]\s*(-?[\d.]+) (-?[\d.]+)|A[\d.]+ [\d.]+ 0 0 [01] (-?[\d.]+) (-?[\d.]+)")


def outer_arc_angles(path: str, cx: float, cy: float) -> tuple[float, float]:
    """The start and end angle (degrees clockwise from 12 o'clock) of a donut sector's outer arc."""
    points = [(float(m[0] or m[2]), float(m[1] or m[3])) for m in ARC_POINT.findall(path)]
    start, _middle, end = points[0], points[1], points[2]

    def angle(point):
        return math.degrees(math.atan2(point[0] - cx, cy - point[1])) % 360

    return angle(start), angle(end)


def test_donut_arcs_sum_to_the_full_circle():
    data = {"Baik": 50, "Rusak ringan": 20, "Rusak sedang": 10, "Rusak berat": 5}
    root = parse(charts.donut_chart(data, title="t"))
    slices = root.findall(f".//{SVG}g[@class='slices']/{SVG}path")
    assert len(slices) == 4
    spans = [(float(p.get("data-start")), float(p.get("data-end"))) for p in slices]
    assert spans[0][0] == 0 and spans[-1][1] == 360
    for (_s1, end), (start, _e2) in zip(spans, spans[1:], strict=False):
        assert start == pytest.approx(end, abs=1e-3)
    assert sum(end - start for start, end in spans) == pytest.approx(360)
    # Each slice's angle is its share of the total.
    for (start, end), value in zip(spans, data.values(), strict=True):
        assert end - start == pytest.approx(360 * value / 85, abs=1e-3)


def test_donut_geometry_matches_the_angles():
    root = parse(charts.donut_chart({"a": 1, "b": 3}, title="t"))
    slices = root.findall(f".//{SVG}g[@class='slices']/{SVG}path")
    total = root.find(f".//{SVG}text[@class='total']")
    cx = float(total.get("x"))
    first_path = slices[0].get("d")
    cy_guess = float(ARC_POINT.findall(first_path)[0][1])  # the first slice starts at 12 o'clock: (cx, cy - r)
    radius = float(re.search(r"A([\d.]+)", first_path).group(1))
    cy = cy_guess + radius
    for path in slices:
        start, end = outer_arc_angles(path.get("d"), cx, cy)
        assert start == pytest.approx(float(path.get("data-start")) % 360, abs=0.1)
        assert end == pytest.approx(float(path.get("data-end")) % 360, abs=0.1)


def test_a_single_part_is_a_full_ring():
    root = parse(charts.donut_chart({"Semua": 3}, title="t"))
    (path,) = root.findall(f".//{SVG}g[@class='slices']/{SVG}path")
    assert (path.get("data-start"), path.get("data-end")) == ("0.0000", "360.0000")
    points = ARC_POINT.findall(path.get("d"))
    assert points[0][:2] == points[2][2:]  # the outer arc ends where it began


def test_donut_leaves_zero_and_negative_parts_out_of_the_ring_but_lists_them():
    root = parse(charts.donut_chart({"Ada": 4, "Nol": 0, "Minus": -2}, title="t"))
    assert len(root.findall(f".//{SVG}g[@class='slices']/{SVG}path")) == 1
    legend = " ".join(texts(root))
    assert "Nol: 0" in legend and "Minus: -2" in legend
    assert "4" in texts(root)  # the total in the middle counts positive parts only


def test_donut_with_nothing_positive_says_no_data():
    assert "Tidak ada data" in texts(parse(charts.donut_chart({"a": 0, "b": -1}, title="t")))


def test_chart_ids_differ_for_different_charts_and_can_be_set():
    first = parse(charts.bar_chart([("a", 1)], title="t"))
    second = parse(charts.bar_chart([("a", 2)], title="t"))
    assert first.get("id") != second.get("id")
    assert parse(charts.bar_chart([("a", 1)], title="t", chart_id="villages")).get("id") == "villages"


def test_line_chart_draws_reference_lines_inside_the_axis_and_can_leave_out_markers():
    svg = charts.line_chart(
        {"Tinggi": [100, 120, 110, 130]},
        labels=["a", "b", "c", "d"],
        title="t",
        unit="cm",
        references=[("Siaga", 300, "#ef6c00")],
        markers=False,
    )
    root = parse(svg)
    line = root.find(f".//{SVG}g[@class='references']/{SVG}line")
    assert line.get("data-value") == "300.0" and line.get("stroke") == "#ef6c00"
    # The threshold is above every value, and still inside the plot: the axis grows to it.
    series_ys = [float(y) for y in re.findall(r"[ML][\d.]+ ([\d.]+)", root.find(f".//{SVG}path").get("d"))]
    assert 0 < float(line.get("y1")) < min(series_ys)
    assert "Siaga 300 cm" in texts(root)
    # Without markers only the last point keeps its circle (and its value label).
    assert [circle.get("data-value") for circle in root.iter(f"{SVG}circle")] == ["130.0"]
    # Several series without markers: only the first series' last value is labelled, not one label on another.
    series = {"Rata-rata": [1, 2], "Maksimum": [1.5, 2.5], "Minimum": [0.5, 1.5]}
    band = parse(charts.line_chart(series, labels=["a", "b"], title="t", markers=False))
    assert [node.text for node in band.iter(f"{SVG}text") if node.get("class") == "value"] == ["2"]
    assert len(list(band.iter(f"{SVG}circle"))) == 3
