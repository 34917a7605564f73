"""How ``%train_compare`` shows a :class:`~workbench.training.result.Comparison`: a readable table.

Presentation only: :meth:`Comparison.table` keeps the numbers (a DataFrame, seconds and
bytes); :class:`ComparisonTable` wraps it for display. Every measure has its unit in its
label (s, MB, samples/s), numbers have three significant digits and no exponent, what was
not measured reads "–" (never ``NaN``), a run that exchanged no bytes reads "none" (never
``inf``), measures that are empty for every run are left out, and the table has one column
per run and one row per measure, so it fits a notebook without a horizontal scrollbar. A
small bar chart (inline SVG: time, bytes exchanged and validation loss per run) comes with it.

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({"name": ["ddp", "part"], "strategy": ["ddp", "partitioned"],
...                       "duration_s": [4.2, 2.7], "bytes_exchanged": [14_000_000, 0],
...                       "time_x": [1.0, 1.556], "bytes_x": [1.0, float("inf")]})
>>> view = ComparisonTable(frame, baseline="ddp")
>>> [row["less traffic than ddp"] for row in view.rows()]
['1.00×', 'none exchanged']
>>> "inf" in repr(view) or "nan" in repr(view)
False
>>> list(view["name"])  # the numbers are still there
['ddp', 'part']
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import Any

from workbench._format import MISSING, is_missing, megabytes, number

__all__ = ["ComparisonTable", "result_html"]


def _ratio(value: Any) -> str:
    return MISSING if is_missing(value) else f"{number(value)}×"


def _traffic_ratio(value: Any) -> str:
    if is_missing(value):
        return MISSING
    return "none exchanged" if math.isinf(float(value)) else f"{number(value)}×"


def _count(value: Any) -> str:
    return MISSING if is_missing(value) else f"{int(value):,}"


def _text(value: Any) -> str:
    return (
        MISSING if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    )


def _columns(frame: Any, baseline: str) -> list[tuple[str, str, Callable[[Any], str]]]:
    """(source column, header with unit, formatter) of the columns to show, in order."""
    cols: list[tuple[str, str, Callable[[Any], str]]] = [
        ("name", "run", _text),
        ("strategy", "strategy", _text),
        ("sharding", "sharding", _text),
        ("partition", "partition", _text),
        ("engines", "engines", _count),
        ("models", "models", _count),
        ("duration_s", "time (s)", number),
        ("train_s", "training (s)", number),
        ("samples_per_s", "samples/s (training)", number),
        ("end_to_end_samples_per_s", "samples/s (end to end)", number),
        ("bytes_exchanged", "exchanged (MB)", megabytes),
        ("control_bytes", "tasks + results (MB)", megabytes),
    ]
    vals = [c for c in frame.columns if str(c).startswith("val_") and not str(c).endswith("_x")]
    cols += [(c, f"val. {str(c)[4:].replace('_', ' ')}", number) for c in vals]
    cols += [
        ("energy_kwh", "energy (Wh)", lambda v: MISSING if is_missing(v) else number(1e3 * v)),
        ("co2_g", "CO₂ (g)", number),
        ("carbon_method", "carbon", _text),
        ("time_x", f"speed-up vs {baseline}", _ratio),
        ("bytes_x", f"less traffic than {baseline}", _traffic_ratio),
        ("val_loss_x", f"loss vs {baseline}", _ratio),
    ]
    shown = []
    for key, head, fmt in cols:
        if key in frame.columns and not all(fmt(v) == MISSING for v in frame[key]):
            shown.append((key, head, fmt))
    return shown


class ComparisonTable:
    """A comparison of runs, formatted for reading; indexing reaches the numbers.

    Parameters
    ----------
    frame : pandas.DataFrame
        :meth:`Comparison.table`'s output (one row per run).
    baseline : str, optional
        The run the ratios refer to (default: the first row's).

    Attributes
    ----------
    frame : pandas.DataFrame
        The numbers, unformatted (``view["time_x"]`` and ``"time_x" in view`` reach them).
    """

    def __init__(self, frame: Any, baseline: str | None = None) -> None:
        self.frame = frame
        first = str(frame["name"].iloc[0]) if len(frame) else ""
        self.baseline = baseline or first

    def __getitem__(self, key: Any) -> Any:
        return self.frame[key]

    def __contains__(self, key: object) -> bool:
        return key in self.frame.columns

    def __len__(self) -> int:
        return len(self.frame)

    def rows(self) -> list[dict[str, str]]:
        """Return the table as text: one dict per run, headers with units as keys."""
        cols = _columns(self.frame, self.baseline)
        return [
            {head: fmt(record.get(key)) for key, head, fmt in cols}
            for record in self.frame.to_dict("records")
        ]

    def __repr__(self) -> str:
        rows = self.rows()
        if not rows:
            return "ComparisonTable(no runs)"
        heads = [h for h in rows[0] if h != "run"]
        names = [r["run"] for r in rows]
        label_w = max(len(h) for h in heads)
        width = [max(len(n), *(len(r[h]) for h in heads)) for n, r in zip(names, rows, strict=True)]
        lines = [
            " " * label_w + "  " + "  ".join(n.rjust(w) for n, w in zip(names, width, strict=True))
        ]
        lines += [
            h.ljust(label_w)
            + "  "
            + "  ".join(r[h].rjust(w) for r, w in zip(rows, width, strict=True))
            for h in heads
        ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """One column per run, one row per measure (with its unit): narrow enough for a notebook."""
        rows = self.rows()
        if not rows:
            return "<p>No runs to compare yet: run <code>%%train</code> first.</p>"
        heads = [h for h in rows[0] if h != "run"]
        th = "".join(
            '<th style="text-align:right;white-space:normal;max-width:9em">'
            f"{html.escape(r['run'])}</th>"
            for r in rows
        )
        body = "".join(
            f'<tr><th style="text-align:left;white-space:nowrap">{html.escape(h)}</th>'
            + "".join(
                f'<td style="text-align:right;white-space:nowrap">{html.escape(r[h])}</td>'
                for r in rows
            )
            + "</tr>"
            for h in heads
        )
        table = (
            '<table class="wb-comparison" style="font-size:12px;table-layout:auto;max-width:100%">'
            f"<thead><tr><th></th>{th}</tr></thead><tbody>{body}</tbody></table>"
        )
        return f'<div class="wb-comparison-view" style="max-width:100%">{table}{self.chart()}</div>'

    def chart(self, width: int = 230) -> str:
        """Small bar charts (inline SVG) of time, bytes exchanged and validation loss per run."""
        panels = [("duration_s", "time (s)", 1.0), ("bytes_exchanged", "exchanged (MB)", 1e-6)]
        if "val_loss" in self.frame.columns:
            panels.append(("val_loss", "val. loss", 1.0))
        names = [str(n) for n in self.frame["name"]]
        svgs = []
        for key, title, scale in panels:
            if key not in self.frame.columns:
                continue
            values = [
                float(v) * scale if not is_missing(v) and math.isfinite(float(v)) else math.nan
                for v in self.frame[key]
            ]
            svgs.append(_bars(title, names, values, self.baseline, width))
        return (
            '<div class="wb-comparison-chart" style="display:flex;flex-wrap:wrap;gap:12px;'
            f'margin-top:6px">{"".join(svgs)}</div>'
        )


def _bars(title: str, names: list[str], values: list[float], baseline: str, width: int) -> str:
    """One horizontal bar chart as SVG; missing values get no bar and a dash."""
    label_w, row_h, top = 110, 16, 16
    finite = [v for v in values if math.isfinite(v)]
    top_value = max(finite) if finite and max(finite) > 0 else 1.0
    bar_w = width - label_w - 50
    height = top + row_h * len(names) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="wb-bars" width="{width}" '
        f'height="{height}" style="font:10px sans-serif">',
        f'<text x="0" y="11" style="font-weight:600">{html.escape(title)}</text>',
    ]
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        y = top + i * row_h
        short = name if len(name) <= 18 else name[:17] + "…"
        parts.append(f'<text x="0" y="{y + 11}">{html.escape(short)}</text>')
        if math.isfinite(value):
            w = max(1.0, bar_w * value / top_value) if value > 0 else 0.0
            colour = "#1c7ed6" if name == baseline else "#f08c00"
            parts.append(
                f'<rect class="wb-bar" x="{label_w}" y="{y + 2}" width="{w:.1f}" '
                f'height="{row_h - 4}" fill="{colour}"/>'
                f'<text x="{label_w + w + 3:.1f}" y="{y + 11}">{number(value)}</text>'
            )
        else:
            parts.append(f'<text x="{label_w}" y="{y + 11}">{MISSING}</text>')
    parts.append("</svg>")
    return "".join(parts)


def result_html(result: Any) -> str:
    """Return one run's summary as a two-column HTML table with units (``TrainResult``)."""
    import pandas as pd

    frame = pd.DataFrame([result.summary()])
    rows = ComparisonTable(frame).rows()[0] if len(frame) else {}
    body = "".join(
        f'<tr><th style="text-align:left">{html.escape(head)}</th>'
        f'<td style="text-align:right">{html.escape(value)}</td></tr>'
        for head, value in rows.items()
        if head not in ("run",)
    )
    return (
        f'<table class="wb-train-result" style="font-size:12px"><caption style="text-align:left">'
        f"TrainResult {html.escape(str(result.name))}</caption>{body}</table>"
    )
