"""Speech recognition cells of a comparison, scored by word error rate: LOWER is better.

The accuracy machinery (chance normalisation, gains over scratch, the verdicts against the classification papers)
never sees these rows: the report splits them off (``split_rows``) and gives them their own sections:

    wer_cells     each cell's test WER and CER over seeds (95% interval inside [0, 1] while every WER is: aggregate.
                  cell_interval), the source model's WER on the same test
                  rows, the relative cut 1 - WER / source WER (per run, then over seeds), and before / after WER on
                  the runs' extra splits (a noisy test split: shift; a source-domain split: forgetting); the cells of
                  each (data set, backbone, size) ranked by mean test WER, lowest first
    differences   every pair of methods: test WER of one minus the other, paired over seeds (negative: the first
                  transcribes better)
    summary       the report's sentences;  table / difference_table: its tables;  wer_vs_size: its figure
"""

from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path
from typing import Any

from hftl.compare import effects
from hftl.compare.aggregate import CELL, cell_interval, fmt_interval
from hftl.compare.plots import METHOD_COLORS, error_bar, error_bars, panel_figure, save
from hftl.compare.stats import Estimate, t_interval
from hftl.tasks.speech_recognition import SpeechRecognition

Row = dict[str, Any]
TASK = SpeechRecognition.name  # results.csv's task column of these rows
SOURCE = effects.SOURCE  # (modality, data set, backbone, size): the cells ranked against each other
NOTE = "WER: word error rate on the test split, lower is better"


def is_transcript_row(row: Row) -> bool:
    return row.get("task") == TASK


def split_rows(rows: list[Row]) -> tuple[list[Row], list[Row]]:
    """(rows scored by accuracy, rows scored by WER)."""
    return [r for r in rows if not is_transcript_row(r)], [r for r in rows if is_transcript_row(r)]


def extra_splits(row: Row) -> dict[str, dict[str, float | None]]:
    """{split: {"before": source WER, "after": trained WER}} of results.csv's extra_splits_wer."""
    return json.loads(row.get("extra_splits_wer") or "{}")


def _relative_cut(row: Row) -> float | None:
    wer, source = row.get("test_wer"), row.get("source_test_wer")
    return None if wer is None or not source else 1.0 - wer / source


def _mean(members: list[Row], key: str) -> float | None:
    values = [r[key] for r in members if r.get(key) is not None]
    return sum(values) / len(values) if values else None


def wer_cells(rows: list[Row]) -> list[Row]:
    """One entry per cell, each (data set, backbone, size) group's cells ranked by mean test WER (lowest first)."""
    rows = [r for r in rows if is_transcript_row(r)]
    split_names = list(dict.fromkeys(name for r in rows for name in extra_splits(r)))
    cells = []
    for key, members in effects.groups(rows, CELL).items():
        cell: Row = dict(zip(CELL, key, strict=True))
        cell |= {
            "n": len(members),
            "wer": cell_interval(members, "test_wer"),
            "cer": cell_interval(members, "test_cer"),
            "source_wer": cell_interval(members, "source_test_wer"),
            "relative_cut": t_interval(_relative_cut(r) for r in members),
            "splits": {name: (_split_wer(members, name, "before"), _split_wer(members, name, "after"))
                       for name in split_names},
            "train_size": _mean(members, "train_size"),
            "test_rows": _mean(members, "test_rows"),
            "trainable_params": _mean(members, "trainable_params"),
            "total_params": _mean(members, "total_params"),
            "runtime": cell_interval(members, "train_runtime_s"),
        }
        cells.append(cell)
    ranked = []
    for group in dict.fromkeys(tuple(c[k] for k in SOURCE) for c in cells):
        mine = [c for c in cells if tuple(c[k] for k in SOURCE) == group]
        mine.sort(key=lambda c: math.inf if c["wer"] is None else c["wer"].value)  # lower WER first
        ranked += [{**c, "rank": i} for i, c in enumerate(mine, start=1)]
    return ranked


def _split_wer(members: list[Row], split: str, when: str) -> Estimate | None:
    """One extra split's WER (before or after training) over the cell's seeds; its rows are not recorded."""
    return cell_interval(members, "extra_split_wer", lambda r: extra_splits(r).get(split, {}).get(when))


def differences(rows: list[Row]) -> list[Row]:
    """Per (data set, backbone, size), each pair of methods: test WER first minus second, paired over seeds."""
    out = []
    for key, members in effects.groups([r for r in rows if is_transcript_row(r)]).items():
        methods = list(dict.fromkeys(r["method"] for r in members))
        for a, b in combinations(methods, 2):
            diff = effects.paired(effects.by_seed(members, a), effects.by_seed(members, b), lambda r: r.get("test_wer"))
            if diff is not None:
                out.append({**dict(zip(SOURCE, key, strict=True)), "method": a, "other": b, "difference": diff})
    return out


def _wer(estimate: Estimate | None) -> str:
    return fmt_interval(estimate)


def _points(estimate: Estimate | None, unit: str = "pt") -> str:
    return "-" if estimate is None else f"{estimate.text(1, scale=100, sign=True)} {unit}"


def summary(rows: list[Row]) -> list[str]:
    """Per (data set, backbone, size): the methods ranked by test WER, the source model, and the paired differences."""
    cells, diffs = wer_cells(rows), differences(rows)
    lines = [f"{NOTE}; each method's runs are ranked by their mean over seeds, lowest first (1 = best). The source "
             "model is the pretrained recogniser before any training, scored on the same test rows."]  # fmt: skip
    for group in dict.fromkeys(tuple(c[k] for k in SOURCE) for c in cells):
        mine = [c for c in cells if tuple(c[k] for k in SOURCE) == group]
        ranking = "; ".join(f"{c['rank']}. {c['method']} {_wer(c['wer'])}" for c in mine)
        source = next((c["source_wer"] for c in mine if c["source_wer"] is not None), None)
        line = f"{group[0]} ({group[1]}, {group[2]}) at {group[3]} training rows: test WER {ranking}"
        line += f"; source model {source.value:.3f}." if source is not None else "."
        cuts = [f"{c['method']} {_points(c['relative_cut'], '%')}" for c in mine if c["relative_cut"] is not None]
        if cuts:
            line += " Relative WER cut vs the source model (1 - WER / source WER): " + ", ".join(cuts) + "."
        pairs = [d for d in diffs if tuple(d[k] for k in SOURCE) == group]
        if pairs:
            line += (" Paired over seeds, WER of one minus the other (negative: the first is better): "
                     + ", ".join(f"{d['method']} - {d['other']} {_points(d['difference'])}" for d in pairs) + ".")  # fmt: skip
        lines.append(line)
    if any(c["splits"] for c in cells):
        lines.append(SPLITS_NOTE)
    return lines


# What the extra splits' before -> after WER can and cannot say (the shipped data set's probe is synthetic speech).
SPLITS_NOTE = (
    "Before -> after WER on each asr.extra_splits split (never trained on): a fall is adaptation reaching it, a rise is "
    "forgetting. On zoo:espeak-sentences, test_noisy is the test split with white noise at 10 dB SNR (a shift) and "
    "source_probe is held-out fortunes sentences in espeak-ng's en-us voice at 130 wpm, the synthetic speech the source "
    "model reads best: a stand-in for the source domain, not the human speech Whisper was trained on, so an unchanged "
    "or better source_probe WER does not show that WER on human speech held."
)


def table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    cells = wer_cells(rows)
    names = list(dict.fromkeys(name for c in cells for name in c["splits"]))
    header = ["rank (lowest WER first)", "modality", "dataset", "backbone", "method", "train rows", "seeds",
              "test rows", "test WER [95%]", "test CER [95%]", "source model WER (same rows)",
              "relative WER cut [95%]", *[f"{n} WER before -> after" for n in names], "trainable params (share)",
              "train s, geometric mean [95%]"]  # fmt: skip
    body = []
    for c in cells:
        share = (f" ({100 * c['trainable_params'] / c['total_params']:.2f}%)"
                 if c["trainable_params"] is not None and c["total_params"] else "")  # fmt: skip
        splits = [f"{_wer(c['splits'][n][0])} -> {_wer(c['splits'][n][1])}" for n in names]
        body.append([
            str(c["rank"]), c["modality"], c["dataset"], c["backbone"], c["method"], _count(c["train_size"]), str(c["n"]),
            _count(c["test_rows"]), _wer(c["wer"]), _wer(c["cer"]), _wer(c["source_wer"]),
            _points(c["relative_cut"], "%"), *splits, _count(c["trainable_params"]) + share,
            fmt_interval(c["runtime"], digits=1),
        ])  # fmt: skip
    return header, body


def difference_table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    header = ["modality", "dataset", "backbone", "train rows", "method", "minus", "test WER difference [95%]",
              "interval", "lower WER"]  # fmt: skip
    body = []
    for d in differences(rows):
        est: Estimate = d["difference"]
        better = {-1: d["method"], 1: d["other"]}.get(est.excludes_zero(), "neither (interval holds 0)" if est.has_interval else "-")
        body.append([d["modality"], d["dataset"], d["backbone"], str(d["shots_per_class"]), d["method"], d["other"],
                     _points(est), est.method, better])  # fmt: skip
    return header, body


def _count(value: float | None) -> str:
    return "-" if value is None else f"{round(value):,}"


def wer_vs_size(rows: list[Row], path: Path) -> Path | None:
    """Test WER (mean, 95% interval over seeds) against training rows, a line per method; dashed: the source model."""
    rows = [r for r in rows if is_transcript_row(r) and r.get("test_wer") is not None]
    if not rows:
        return None
    sources = list(dict.fromkeys((r["dataset"], r["backbone"]) for r in rows))
    fig, axes = panel_figure(len(sources))
    for ax, (dataset, backbone) in zip(axes, sources, strict=True):
        mine = [r for r in rows if (r["dataset"], r["backbone"]) == (dataset, backbone)]
        sizes = list(dict.fromkeys(r["shots_per_class"] for r in mine))
        for method in dict.fromkeys(r["method"] for r in mine):
            points = [(x, cell_interval([r for r in mine if r["method"] == method and r["shots_per_class"] == s],
                                        "test_wer")) for x, s in enumerate(sizes)]  # fmt: skip
            points = [(x, e) for x, e in points if e is not None]
            ax.errorbar([x for x, _ in points], [e.value for _, e in points],
                        yerr=error_bars([error_bar(e) for _, e in points]), marker="o", capsize=3,
                        label=method, color=METHOD_COLORS.get(method))  # fmt: skip
        source = cell_interval(mine, "source_test_wer")
        if source is not None:
            ax.axhline(source.value, color="black", linestyle="--", linewidth=1, label="source model (before training)")
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_xlabel("training rows")
        ax.set_ylabel("test WER (lower is better)")
        ax.set_title(f"{dataset}, {backbone}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, path)


FIGURE = ("wer_vs_size.png", "Speech recognition: test word error rate (lower is better) against training rows, mean "
          "over seeds with 95% intervals; dashed: the source model before training.", wer_vs_size)  # fmt: skip
