"""The queues pages' sparkline geometry and depth ranges, from plain data."""
from __future__ import annotations

from webui.store.queue_queries import depth_range, thin
from webui.views.queues import sparkline, sparkline_path


def test_time_runs_left_to_right_and_depth_bottom_to_top_from_zero():
    # 100 s window, 100 px wide, 24 px high with 2 px padding: y = 22 for 0, 2 for the maximum.
    d = sparkline_path([(0, 0), (50, 5), (100, 10)], 0, 100, width=100, height=24)
    assert d == "M0.0 22.0 L50.0 12.0 L100.0 2.0"


def test_an_empty_queue_lies_on_the_floor():
    assert sparkline_path([(0, 0), (10, 0)], 0, 10, width=10, height=24) == "M0.0 22.0 L10.0 22.0"


def test_the_pen_lifts_over_missing_samples_and_long_silences():
    points = [(0, 1), (10, 1), (20, None), (30, 1), (40, 1), (90, 1), (100, 1)]
    d = sparkline_path(points, 0, 100, width=100, height=24, gap=15)
    assert d == "M0.0 2.0 L10.0 2.0 M30.0 2.0 L40.0 2.0 M90.0 2.0 L100.0 2.0"


def test_an_isolated_sample_is_drawn_as_a_dot():
    d = sparkline_path([(0, 1), (50, 2), (100, 1)], 0, 100, width=100, height=24, gap=10)
    assert d == "M0.0 12.0 h0 M50.0 2.0 h0 M100.0 12.0 h0"


def test_samples_before_the_window_are_pinned_to_its_edge():
    assert sparkline_path([(-50, 3), (100, 3)], 0, 100, width=100, height=24).startswith("M0.0 ")


def test_no_known_depth_is_no_line():
    assert sparkline_path([], 0, 100, width=100, height=24) == ""
    assert sparkline_path([(5, None)], 0, 100, width=100, height=24) == ""
    assert "—" in sparkline([], 0, 100)


def test_the_svg_is_styled_by_classes_and_its_label_is_escaped():
    svg = str(sparkline([(0, 1), (1, 2)], 0, 1, label='<script>"x"</script>'))
    assert svg.startswith('<svg class="sparkline"') and 'class="sparkline-line"' in svg
    assert "style" not in svg and "<script>" not in svg and "&lt;script&gt;" in svg


def test_min_and_max_ignore_unknown_depths():
    assert depth_range([(0, 4), (1, None), (2, 9), (3, 2)]) == (2, 9)
    assert depth_range([(0, None)]) == (None, None) == depth_range([])


def test_thinning_keeps_the_spikes():
    points = [(float(i), 1) for i in range(1000)]
    points[500] = (500.0, 99)
    thinned = thin(points, limit=100)
    assert len(thinned) <= 100 and max(d for _, d in thinned) == 99
    assert thin(points[:10], limit=100) == points[:10]
