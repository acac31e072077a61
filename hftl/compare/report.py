"""Write the comparison's outputs into REPORT_DIR:

    results.csv        one row per finished run (aggregate.COLUMNS)
    results.md         the written summary and the mean ± std table over seeds, as markdown
    plots/*.png        the figures (plots.FIGURES)
    report.html        all of it in one self-contained page: images embedded as base64, no outside files
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path
from typing import Any

from hftl import files
from hftl.compare import aggregate, findings, plots
from hftl.compare.grid import GridRun
from hftl.compare.spec import CompareSpec

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
"""


def _table(header: list[str], rows: list[list[str]], numeric_from: int = 0) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if i >= numeric_from else ""}>{html.escape(str(v))}</td>'
                         for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _embedded(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")  # fmt: skip


def _grid_description(spec: CompareSpec, runs: list[GridRun], rows: list[dict[str, Any]]) -> list[str]:
    sources = dict.fromkeys((r.dataset, r.modality, r.backbone) for r in runs)
    # What the runs were configured to measure (an hftl without a measurement runs without it, see grid.py).
    measured = [k for k in ("transferability", "shift", "forgetting")
                if runs and getattr(runs[0].config.evaluation, k, False)] or ["none"]  # fmt: skip
    missing = len(runs) - len(rows)
    return [
        f"{len(rows)} of {len(runs)} runs finished" + (f" ({missing} without results: failed or not run yet)." if missing else "."),
        "Data sets and backbones: " + "; ".join(f"{d} ({m}) with {b}" for d, m, b in sources) + ".",
        f"Methods: {', '.join(spec.methods)}. Training sizes (rows per class): "
        f"{', '.join(map(str, spec.shots_per_class))}. Seeds: {', '.join(map(str, spec.seeds))} "
        "(the training subset is the same for every seed; seeds change initialisation, data order and dropout).",
        f"Extra measurements: {', '.join(measured)}.",
    ]


def _gain_rows(cells: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [g["modality"], g["dataset"], g["backbone"], str(g["shots_per_class"]), g["best_method"],
         f"{g['best_accuracy']:.3f}", f"{g['scratch_accuracy']:.3f}", f"{100 * g['gain']:+.1f}"]
        for g in findings.transfer_gains(cells)
    ]  # fmt: skip


_GAIN_HEADER = ["modality", "dataset", "backbone", "shots/class", "best transfer method", "its accuracy",
                "scratch accuracy", "gain (points)"]  # fmt: skip


def render_html(spec: CompareSpec, runs: list[GridRun], rows: list[dict[str, Any]], figures: list[tuple[Path, str]]) -> str:
    cells = aggregate.cells(rows)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(str(spec.name))}: hftl compare</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(str(spec.name))}: when does transfer pay off?</h1>",
        "".join(f"<p>{html.escape(line)}</p>" for line in _grid_description(spec, runs, rows)),
        "<h2>Summary</h2>",
    ]
    for title, lines in findings.summary(rows, cells).items():
        parts.append(f"<h3>{html.escape(title)}</h3><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in lines) + "</ul>")
    parts.append("<h2>Figures</h2>")
    parts += [_embedded(path, caption) for path, caption in figures]
    parts.append("<h2>Transfer gain per training size</h2>")
    parts.append(_table(_GAIN_HEADER, _gain_rows(cells), numeric_from=5))
    parts.append("<h2>All results (mean ± std over seeds)</h2>")
    parts.append(_table(aggregate.TABLE_HEADER, aggregate.table_rows(cells), numeric_from=5))
    parts.append(
        f"<p><small>Every run is in results.csv beside this page. Written by <code>hftl compare</code> on "
        f"{time.strftime('%Y-%m-%d %H:%M')}.</small></p></body></html>"
    )
    return "\n".join(parts)


def render_markdown(spec: CompareSpec, runs: list[GridRun], rows: list[dict[str, Any]]) -> str:
    cells = aggregate.cells(rows)
    lines = [f"# {spec.name}: when does transfer pay off?", ""]
    lines += [*_grid_description(spec, runs, rows), ""]
    for title, sentences in findings.summary(rows, cells).items():
        lines += [f"## {title}", "", *[f"- {s}" for s in sentences], ""]
    lines += ["## All results (mean ± std over seeds)", "", aggregate.markdown_table(cells)]
    return "\n".join(lines)


def write_report(spec: CompareSpec, runs: list[GridRun], report_dir: Path) -> Path:
    """Collect the finished runs and write results.csv, results.md, plots/ and report.html; returns report.html."""
    report_dir = Path(report_dir)
    rows = aggregate.collect(runs)
    aggregate.write_csv(rows, report_dir / "results.csv")
    files.write_text_atomic(report_dir / "results.md", render_markdown(spec, runs, rows))
    figures = plots.make_figures(rows, report_dir / "plots")
    page = report_dir / "report.html"
    files.write_text_atomic(page, render_html(spec, runs, rows, figures))
    return page
