"""The Prometheus text exposition format (version 0.0.4), rendered from plain data; no I/O, no registry.

`/metrics` builds a list of `Family` values from the store at scrape time (webui.store.metrics_queries) and
`render` turns them into text: `# HELP` and `# TYPE` once per family, label values escaped (backslash, double
quote, newline), histograms as cumulative `_bucket{le=…}` series ending in `le="+Inf"`, then `_sum` and `_count`.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = ("counter", "gauge", "histogram")


@dataclass
class HistogramValue:
    """One histogram series: counts per bucket (not cumulative, one per upper bound, then one for +Inf)."""

    counts: Sequence[float]
    sum: float


@dataclass
class Family:
    """A metric family: its name, type and help, and its series as (labels, value)."""

    name: str
    type: str
    help: str
    bounds: tuple[float, ...] = ()  # histograms only: the buckets' upper bounds, increasing, without +Inf
    samples: list[tuple[dict[str, str], float | HistogramValue]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"{self.name!r} is not a valid metric name")
        if self.type not in TYPES:
            raise ValueError(f"{self.name}: unknown metric type {self.type!r}")
        if list(self.bounds) != sorted(set(self.bounds)) or any(math.isinf(b) for b in self.bounds):
            raise ValueError(f"{self.name}: bucket bounds must be finite and strictly increasing")

    def add(self, labels: Mapping[str, str], value: float | HistogramValue) -> None:
        for name in labels:
            if not _LABEL.match(name) or name.startswith("__") or (self.type == "histogram" and name == "le"):
                raise ValueError(f"{self.name}: {name!r} is not a valid label name here")
        if isinstance(value, HistogramValue) != (self.type == "histogram"):
            wanted = "a HistogramValue" if self.type == "histogram" else "a number"
            raise ValueError(f"{self.name}: a {self.type} takes {wanted}")
        if isinstance(value, HistogramValue) and len(value.counts) != len(self.bounds) + 1:
            raise ValueError(f"{self.name}: {len(value.counts)} bucket counts for {len(self.bounds)} bounds + Inf")
        self.samples.append((dict(labels), value))


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """Integers without a fraction, other numbers as Python's shortest repr; NaN and ±Inf as Prometheus spells them."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def format_bound(bound: float) -> str:
    """An `le` value: 0.5 → "0.5", 1 → "1.0", as the official clients write them."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{escape_label_value(str(value))}"' for name, value in labels.items())
    return "{" + inner + "}"


def _histogram_lines(family: Family, labels: dict[str, str], value: HistogramValue) -> Iterable[str]:
    cumulative = 0.0
    for bound, count in zip((*family.bounds, math.inf), value.counts, strict=True):
        cumulative += count
        yield f"{family.name}_bucket{_labels({**labels, 'le': format_bound(bound)})} {format_value(cumulative)}"
    yield f"{family.name}_sum{_labels(labels)} {format_value(value.sum)}"
    yield f"{family.name}_count{_labels(labels)} {format_value(cumulative)}"


def render(families: Iterable[Family]) -> str:
    """The exposition text of `families`, in the order given; a family with no series still says what it is."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for labels, value in family.samples:
            if isinstance(value, HistogramValue):
                lines.extend(_histogram_lines(family, labels, value))
            else:
                lines.append(f"{family.name}{_labels(labels)} {format_value(value)}")
    return "\n".join(lines) + "\n"
