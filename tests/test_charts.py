"""registry_site.charts: the console's SVG charts are well-formed XML, hold one line, point, marker or bar
per datum given, escape every text, say "no data" rather than draw an empty frame, and carry what a
screen reader and a tooltip need (role, title, description, each value in a <title>)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from registry_site import charts

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOSTILE = "<script>alert(\"x\")</script> & 'quote' \x01"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert float(root.get("width")) > 0 and float(root.get("height")) > 0
    return root


def find(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}{tag}") if cls in (e.get("class") or "").split()]


def hours(n: int, start: datetime = T0, value=lambda i: 0.5 + i / 100) -> list[tuple[datetime, float]]:
    return [(start + timedelta(hours=i), value(i)) for i in range(n)]


def test_a_line_per_series_a_point_per_value_and_the_markers():
    svg = charts.time_series_chart(
        title="accuracy of resnet:v2",
        series=[charts.Series("eval", hours(24)), charts.Series("production", hours(5, T0 + timedelta(hours=10)))],
        markers=[
            charts.Marker(T0 + timedelta(hours=3), "deployed to production", "deploy"),
            charts.Marker(T0 + timedelta(hours=20), "rolled back from production", "rollback"),
        ],
        y_label="accuracy",
    )
    root = parse(svg)
    assert root.find(f"{SVG}title").text == "accuracy of resnet:v2"
    assert "eval: 24 points, latest 0.73" in root.find(f"{SVG}desc").text
    lines = find(root, "g", "registry-series")
    assert [line.get("data-series") for line in lines] == ["eval", "production"]
    assert [len(line.findall(f"{SVG}circle")) for line in lines] == [24, 5]
    assert lines[0].find(f"{SVG}path").get("d").count("L") == 23
    markers = find(root, "g", "registry-marker")
    assert [m.find(f"{SVG}text").text for m in markers] == ["deployed to production", "rolled back from production"]
    assert markers[0].find(f"{SVG}line").get("stroke") != markers[1].find(f"{SVG}line").get("stroke")
    tooltip = lines[1].find(f"{SVG}circle/{SVG}title").text
    assert tooltip == "production: 0.5 at 2026-11-01 10:00 UTC"
    assert [len(find(root, "g", "registry-legend-item"))] == [2]


def test_points_are_placed_in_time_and_value_order():
    root = parse(
        charts.time_series_chart(title="t", series=[charts.Series("s", [(T0, 1.0), (T0 + timedelta(1), 3.0)])])
    )
    first, second = find(root, "circle", "registry-point")
    assert float(first.get("cx")) < float(second.get("cx"))
    assert float(first.get("cy")) > float(second.get("cy"))  # SVG's y grows downwards: 3 is higher up


def test_a_dense_line_keeps_its_tooltips_without_drawing_every_dot():
    root = parse(charts.time_series_chart(title="t", series=[charts.Series("s", hours(400))]))
    points = find(root, "circle", "registry-point")
    assert len(points) == 400 and {p.get("fill-opacity") for p in points} == {"0"}


def test_notes_go_in_the_tooltips_and_one_colour_per_source_is_kept():
    series = charts.Series("eval", hours(2), notes=["average of 12 points", "average of 3 points"], colour=4)
    root = parse(charts.time_series_chart(title="t", series=[series]))
    assert find(root, "circle", "registry-point")[1].find(f"{SVG}title").text.endswith("(average of 3 points)")
    assert find(root, "g", "registry-series")[0].find(f"{SVG}path").get("stroke") == charts.PALETTE[4]


def test_hostile_names_are_escaped_and_the_svg_stays_valid():
    svg = charts.time_series_chart(
        title=HOSTILE,
        series=[charts.Series(HOSTILE, hours(3))],
        markers=[charts.Marker(T0, HOSTILE, HOSTILE)],
        y_label=HOSTILE,
    )
    assert "<script" not in svg and "\x01" not in svg
    root = parse(svg)
    cleaned = HOSTILE.replace("\x01", "")
    assert root.get("aria-label") == cleaned and root.find(f"{SVG}title").text == cleaned
    assert find(root, "g", "registry-series")[0].get("data-series") == cleaned
    bars = charts.bar_chart(title=HOSTILE, labels=[HOSTILE, "v2"], values=[1.0, 2.0], y_label=HOSTILE)
    assert "<script" not in bars and parse(bars).find(f"{SVG}title").text == cleaned
    grouped = charts.grouped_bar_chart(title="t", groups=[HOSTILE], series=[charts.BarSeries(HOSTILE, [1.0])])
    assert "<script" not in grouped and find(parse(grouped), "g", "registry-group")[0].get("data-group") == cleaned


@pytest.mark.parametrize(
    "chart",
    [
        lambda: charts.time_series_chart(title="accuracy", series=[]),
        lambda: charts.time_series_chart(title="accuracy", series=[charts.Series("eval", [])]),
        lambda: charts.bar_chart(title="accuracy", labels=["v1", "v2"], values=[None, None]),
        lambda: charts.grouped_bar_chart(title="accuracy", groups=["a"], series=[charts.BarSeries("v1", [None])]),
        lambda: charts.grouped_bar_chart(title="accuracy", groups=[], series=[]),
    ],
)
def test_no_data_says_so_instead_of_an_empty_chart(chart):
    html = chart()
    assert "<svg" not in html and "no data" in html and "accuracy" in html


def test_a_single_point_and_a_flat_line_still_have_a_scale():
    root = parse(charts.time_series_chart(title="t", series=[charts.Series("s", [(T0, 0.9)])]))
    point = find(root, "circle", "registry-point")[0]
    assert all(0 < float(point.get(axis)) < float(root.get(size)) for axis, size in (("cx", "width"), ("cy", "height")))


def test_a_bar_per_version_in_order_and_a_gap_for_a_missing_value():
    root = parse(
        charts.bar_chart(title="auc across versions", labels=["v1", "v2", "v3"], values=[0.8, None, 0.9], y_label="auc")
    )
    bars = find(root, "rect", "registry-bar")
    assert [b.find(f"{SVG}title").text for b in bars] == ["v1: 0.8", "v3: 0.9"]
    assert float(bars[0].get("x")) < float(bars[1].get("x"))
    assert float(bars[0].get("height")) < float(bars[1].get("height"))
    assert [t.find(f"{SVG}title").text for t in find(root, "text", "registry-no-value")] == ["v2: no value"]
    assert [t.find(f"{SVG}title").tail for t in find(root, "text", "registry-category")] == ["v1", "v2", "v3"]


def test_many_versions_get_slanted_shortened_labels():
    labels = [f"2026.11.{i:02d}-release-candidate" for i in range(40)]
    root = parse(charts.bar_chart(title="t", labels=labels, values=[float(i) for i in range(40)]))
    categories = find(root, "text", "registry-category")
    assert len(categories) == 40 and all("rotate" in c.get("transform") for c in categories)
    assert categories[0].find(f"{SVG}title").tail.endswith("…") and categories[0].find(f"{SVG}title").text == labels[0]


def test_grouped_bars_a_panel_per_metric_with_its_own_scale_and_the_best_marked():
    root = parse(
        charts.grouped_bar_chart(
            title="compared",
            groups=["accuracy", "latency_ms", "empty"],
            series=[charts.BarSeries("m:v1", [0.91, 120.0, None]), charts.BarSeries("m:v2", [0.93, -5.0, None])],
            best=[[1], [1], []],
        )
    )
    groups = find(root, "g", "registry-group")
    assert [g.get("data-group") for g in groups] == ["accuracy", "latency_ms"]  # no values, no panel
    assert len(find(root, "rect", "registry-bar")) == 4
    titles = [b.find(f"{SVG}title").text for b in find(groups[0], "rect", "registry-bar")]
    assert titles == ["accuracy: m:v1: 0.91", "accuracy: m:v2: 0.93 (best)"]
    ticks = [[t.text for t in find(g, "g", "registry-y-axis")[0].iter(f"{SVG}text")] for g in groups]
    assert ticks[0][-1] == "1" and ticks[1][-1] == "150" and ticks[1][0] == "-50"  # each on its own scale
    negative = find(groups[1], "rect", "registry-bar")[1]
    assert float(negative.get("height")) > 0


def test_nice_ticks_and_time_ticks():
    assert charts.nice_ticks(0.81, 0.93) == [0.8, 0.825, 0.85, 0.875, 0.9, 0.925, 0.95]
    assert charts.nice_ticks(0, 120, count=4) == [0, 50, 100, 150]
    assert charts.nice_ticks(5, 5)[0] < 5 < charts.nice_ticks(5, 5)[-1]
    assert charts.nice_ticks(-1.7e308, 1.7e308) == [-1.7e308, 1.7e308]  # no overflow to infinity
    flat = charts.nice_ticks(0.5449999999999999, 0.545)  # equal but for rounding
    assert flat[0] < 0.545 < flat[-1] and len(flat) < 10
    ticks, fmt = charts.time_ticks(T0, T0 + timedelta(days=10))
    assert fmt == "%Y-%m-%d" and T0 <= ticks[0] < T0 + timedelta(days=2) and 4 <= len(ticks) <= 7
    ticks, fmt = charts.time_ticks(T0, T0 + timedelta(days=3))
    assert fmt == "%m-%d %H:%M" and ticks[1] - ticks[0] == timedelta(hours=12)
    ticks, fmt = charts.time_ticks(T0, T0 + timedelta(hours=5))
    assert fmt == "%H:%M" and all(t.minute == 0 for t in ticks)
    ticks, _ = charts.time_ticks(T0, T0 + timedelta(days=365 * 30))
    assert 1 < len(ticks) <= 8


def test_extreme_values_still_make_valid_svg():
    series = [charts.Series("s", [(T0, -1.7e308), (T0 + timedelta(hours=1), 1.7e308), (T0 + timedelta(hours=2), 0.0)])]
    svg = charts.time_series_chart(title="t", series=series)
    assert "inf" not in svg and "nan" not in svg
    parse(svg)
    bars = charts.bar_chart(title="t", labels=["a", "b"], values=[-1.7e308, 1.7e308])
    assert "inf" not in bars and "nan" not in bars
    parse(bars)
