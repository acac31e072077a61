"""Write the comparison's outputs into REPORT_DIR:

    results.csv        one row per finished run (aggregate.COLUMNS)
    results.md         the reviewer's checklist, the verdict table, the written summary and the tables (every number with
                       its 95% interval), as markdown; speech recognition runs in sections of their own, scored by
                       word error rate (lower is better: transcripts.py), never by the accuracy sections
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
from hftl.compare import aggregate, checklist, findings, plots, transcripts, verdicts
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
    changed = [row for row in rows if row.get("run_state") == "changed"]  # as aggregate.collect read them
    keys = sorted({key for row in changed for key in row.get(aggregate.CONFIG_CHANGES, [])})
    return [
        f"{len(rows)} of {len(runs)} runs finished" + (f" ({missing} without results: failed or not run yet)." if missing else ".")
        + (f" {len(changed)} of them ran under a config other than the one the spec generates now (differing in "
           f"{', '.join(keys[:8]) + (' and more' if len(keys) > 8 else '') or 'unreadable configs'}); this report "
           "(hftl compare --report-only) reads them as recorded, a plain rerun retrains them." if changed else ""),
        "Data sets and backbones: " + "; ".join(f"{d} ({m}) with {b}" for d, m, b in sources) + ".",
        f"Methods: {', '.join(spec.methods)}. Training sizes (rows per class; speech recognition: training rows): "
        f"{', '.join(map(str, spec.shots_per_class))}.",
        f"Extra measurements: {', '.join(measured)}.",
    ]


def _sections(spec: CompareSpec, runs: list[GridRun], rows: list[dict[str, Any]],
              curve_rows: list[dict[str, Any]] = ()) -> list[tuple[str, Any]]:
    """The report in order, shared by the markdown and the HTML: (title, lines) or (title, (header, table rows)).
    The figures go after the first _figures_after(rows) sections (the checklist and, with classifiers, the verdicts).
    curve_rows: the learning-rate curve's runs (spec curve_methods), read by the Biderman verdict and its section."""
    scored, transcribed = transcripts.split_rows(rows)
    curve = transcripts.split_rows(list(curve_rows))[0]
    along_rate = findings.curve_summary(verdicts.with_curve(scored, curve))
    out: list[tuple[str, Any]] = [("Reviewer's checklist", checklist.checklist(spec, rows))]
    if _shows_accuracy(rows):
        out += [
            ("Verdicts against the literature", [verdicts.RULES]),
            ("", (verdicts.HEADER, verdicts.table_cells(verdicts.verdict_table(scored, curve)))),
            *findings.summary(scored).items(),
            *([("Learning vs forgetting along the learning rate (curve runs; accuracy: Wilson at the effective n, "
                "forgetting change: t over seeds)", along_rate)] if along_rate else []),
            ("Transfer gain per training size (each method minus scratch, paired over seeds)", findings.gain_table(scored)),
            ("Transferability: candidate backbones ranked per data set and size", findings.ranking_table(scored)),
            ("All results (mean over seeds, 95% interval: t over seeds; accuracy and F1: Wilson at the effective n of "
             "the seeds' spread, inside [0, 1]; one seed: Wilson on its test rows; training seconds: geometric mean, "
             "t on the log seconds, so above 0)",
             (aggregate.TABLE_HEADER, aggregate.table_rows(aggregate.cells(scored)))),
        ]  # fmt: skip
    if transcribed:
        out += [
            ("Speech recognition: methods ranked by test word error rate (lower is better)", transcripts.summary(transcribed)),
            ("Speech recognition results (mean over seeds, 95% interval: WER and CER Wilson at the effective n of the "
             "seeds' spread, inside [0, 1] unless a WER passes 1; training seconds: geometric mean, t on the log "
             "seconds; other columns t over seeds)", transcripts.table(transcribed)),
            ("Speech recognition: paired WER differences between methods", transcripts.difference_table(transcribed)),
        ]  # fmt: skip
    return out


def _shows_accuracy(rows: list[dict[str, Any]]) -> bool:
    """Whether the report has the accuracy sections: classifier rows, or no rows at all (an empty report's tables)."""
    scored, transcribed = transcripts.split_rows(rows)
    return bool(scored) or not transcribed


def _figures_after(rows: list[dict[str, Any]]) -> int:
    return 3 if _shows_accuracy(rows) else 1  # after the checklist, or the checklist and the verdict table


def make_figures(rows: list[dict[str, Any]], out_dir: Path) -> list[tuple[Path, str]]:
    """The accuracy figures of the classifiers' rows, then the speech recognisers' WER figure."""
    scored, transcribed = transcripts.split_rows(rows)
    drawn = plots.make_figures(scored, out_dir)
    name, caption, draw = transcripts.FIGURE
    path = draw(transcribed, Path(out_dir) / name)
    return drawn + ([(path, caption)] if path is not None else [])


def render_html(spec: CompareSpec, runs: list[GridRun], rows: list[dict[str, Any]], figures: list[tuple[Path, str]],
                curve_rows: list[dict[str, Any]] = ()) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(str(spec.name))}: hftl compare</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(str(spec.name))}: when does transfer pay off?</h1>",
        "".join(f"<p>{html.escape(line)}</p>" for line in _grid_description(spec, runs, rows)),
    ]
    sections, figures_at = _sections(spec, runs, rows, curve_rows), _figures_after(rows)
    for i, (title, content) in enumerate(sections):
        if i == figures_at:  # the figures after the checklist and the verdicts
            parts.append("<h2>Figures</h2>")
            parts += [_embedded(path, caption) for path, caption in figures]
        if title:
            parts.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(content, tuple):
            header, table = content
            parts.append(_table(header, table, numeric_from=len(header)) if table else "<p>(nothing measured)</p>")
        else:
            parts.append("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in content) + "</ul>")
    parts.append(
        f"<p><small>Every run is in results.csv beside this page. Written by <code>hftl compare</code> on "
        f"{time.strftime('%Y-%m-%d %H:%M')}.</small></p></body></html>"
    )
    return "\n".join(parts)


def render_markdown(spec: CompareSpec, runs: list[GridRun], rows: list[dict[str, Any]],
                    curve_rows: list[dict[str, Any]] = ()) -> str:
    lines = [f"# {spec.name}: when does transfer pay off?", ""]
    lines += [*_grid_description(spec, runs, rows), ""]
    for title, content in _sections(spec, runs, rows, curve_rows):
        if title:
            lines += [f"## {title}", ""]
        if isinstance(content, tuple):
            header, table = content
            lines += [aggregate.markdown(header, table) if table else "(nothing measured)", ""]
        else:
            lines += [*[f"- {s}" for s in content], ""]
    return "\n".join(lines)


def verdict_markdown(rows: list[dict[str, Any]], curve_rows: list[dict[str, Any]] = ()) -> str:
    """The verdict table alone, with its rules (`hftl compare SPEC --verdicts`)."""
    scored = transcripts.split_rows(rows)[0]  # the claims are about accuracy: speech recognisers' WER is not one
    curve = transcripts.split_rows(list(curve_rows))[0]
    return aggregate.markdown(verdicts.HEADER, verdicts.table_cells(verdicts.verdict_table(scored, curve))) + "\n" + verdicts.RULES + "\n"


def write_report(spec: CompareSpec, runs: list[GridRun], report_dir: Path, curve: list[GridRun] = (),
                 states: tuple[str, ...] = ("done",)) -> Path:
    """Collect the finished runs and write results.csv, results.md, plots/ and report.html; returns report.html.
    curve: the learning-rate curve's runs (selection.curve_runs), kept out of every table but the Biderman verdict
    and the curve section (they repeat the chosen rate's seeds).
    states: which runs to read (runner.run_state); ("done", "changed") rebuilds a report from every finished run."""
    report_dir = Path(report_dir)
    rows, curve_rows = aggregate.collect(runs, states), aggregate.collect(curve, states)
    aggregate.write_csv(rows, report_dir / "results.csv")
    files.write_text_atomic(report_dir / "results.md", render_markdown(spec, runs, rows, curve_rows))
    figures = make_figures(rows, report_dir / "plots")
    page = report_dir / "report.html"
    files.write_text_atomic(page, render_html(spec, runs, rows, figures, curve_rows))
    return page
