"""Geometry of the overview's server-rendered SVG bar charts (the template draws the rectangles).

Pure: series in, rectangles out, in a fixed viewBox the page stretches to its width. No script, no inline style
(the CSP is `default-src 'self'`): each bar carries a CSS class, each column a `<title>` for hover values.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 600
HEIGHT = 120
GAP = 0.2  # of a column's width, between bars
MIN_BAR = 1.0  # a non-zero value is never drawn thinner than this, so one failure stays visible


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str


@dataclass(frozen=True)
class Column:
    x: float  # the whole column (hover area)
    width: float
    bars: tuple[Bar, ...]  # stacked, first series at the bottom
    title: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    columns: tuple[Column, ...]
    scale: int  # the value at the top of the chart
    gridlines: tuple[tuple[float, int], ...]  # (y, value)

    @property
    def empty(self) -> bool:
        return not any(c.bars for c in self.columns)


def nice_ceiling(value: float) -> int:
    """The smallest 1, 2 or 5 × 10^k that is ≥ value (at least 1): a round number for the top of the axis."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return int(step * magnitude)
    return int(10 * magnitude)  # pragma: no cover - the loop always returns


def stacked_bars(columns: Sequence[tuple[str, Sequence[int]]], classes: Sequence[str],
                 width: int = WIDTH, height: int = HEIGHT) -> BarChart:
    """One column per (title, values); values stack bottom-up with `classes[i]` as each series' CSS class."""
    scale = nice_ceiling(max((sum(values) for _, values in columns), default=0))
    step = width / len(columns) if columns else width
    bar_width = step * (1 - GAP)
    drawn = []
    for i, (title, values) in enumerate(columns):
        x = i * step
        bottom = float(height)
        bars = []
        for value, css in zip(values, classes, strict=True):
            if value <= 0:
                continue
            size = min(max(value / scale * height, MIN_BAR), bottom)
            bottom -= size
            bars.append(Bar(round(x + step * GAP / 2, 2), round(bottom, 2), round(bar_width, 2), round(size, 2), css))
        drawn.append(Column(round(x, 2), round(step, 2), tuple(bars), title))
    gridlines = tuple((round(height - height * f, 2), round(scale * f)) for f in (0.5, 1.0)
                      if scale * f == int(scale * f))
    return BarChart(width, height, tuple(drawn), scale, gridlines)
