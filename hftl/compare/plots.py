"""The report's figures (matplotlib, PNG): one panel per modality, one colour per method.

Each function returns the file it wrote, or None when the rows hold nothing to draw (e.g. no shift scores).
Error bars are each mean's 95% interval as aggregate.cell_interval makes it (inside [0, 1] for accuracy, so they can
be uneven); ``panel_figure``, ``save`` and ``error_bar(s)`` are shared with the speech recognition figure (transcripts.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from hftl.compare.aggregate import cell_interval  # noqa: E402
from hftl.compare.stats import Estimate  # noqa: E402
from hftl.modalities import registered_modalities  # noqa: E402
from hftl.run.methods import all_methods  # noqa: E402

METHOD_COLORS = {m.name: m.color for m in all_methods()}
_LINESTYLES = ["-", "--", ":", "-."]


def _modalities(rows: list[dict[str, Any]]) -> list[str]:
    present = {r["modality"] for r in rows}
    order = registered_modalities()  # the modality table's order; a name it does not know (an old report) goes last
    return [m for m in order if m in present] + sorted(present - set(order))


def _ordered(values: list[Any]) -> list[Any]:
    """Unique values in first-seen order."""
    return list(dict.fromkeys(values))


def panel_figure(n: int, height: float = 3.6) -> tuple[Any, list[Any]]:
    """A figure of n panels side by side: (fig, [ax, ...])."""
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, height), squeeze=False)
    return fig, list(axes[0])


def _modality_panels(rows: list[dict[str, Any]], modalities: list[str] | None = None) -> tuple[Any, list[tuple]]:
    """A figure with a panel per modality: (fig, [(ax, modality, that modality's rows), ...])."""
    modalities = _modalities(rows) if modalities is None else modalities
    fig, axes = panel_figure(len(modalities))
    return fig, [(ax, m, [r for r in rows if r["modality"] == m]) for ax, m in zip(axes, modalities, strict=True)]


def save(fig: Any, path: Path) -> Path:
    """Write the figure as PNG (its folder made if needed), close it, return the path."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


Bar = tuple[float, float]  # an error bar's length below and above the mean


def error_bar(estimate: Estimate | None) -> Bar:
    """(mean - low, high - mean) of the 95% interval; (0, 0) without one."""
    if estimate is None or not estimate.has_interval:
        return 0.0, 0.0
    return estimate.value - estimate.low, estimate.high - estimate.value


def error_bars(bars: list[Bar]) -> list[list[float]]:
    """matplotlib's yerr for uneven bars: [[below, ...], [above, ...]]."""
    return [[b[0] for b in bars], [b[1] for b in bars]]


def _mean(rows: list[dict[str, Any]], key: str) -> tuple[float | None, Bar]:
    """Mean over the rows and its 95% interval as an error bar (aggregate.cell_interval)."""
    estimate = cell_interval(rows, key)
    return (None if estimate is None else estimate.value), error_bar(estimate)


def accuracy_vs_size(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Test accuracy (mean and 95% interval over seeds) against shots per class, a line per method (and data set / backbone)."""
    if not rows:
        return None
    fig, panels = _modality_panels(rows)
    for ax, modality, mine in panels:
        sizes = _ordered([r["shots_per_class"] for r in mine])
        sources = _ordered([(r["dataset"], r["backbone"]) for r in mine])
        for s_index, (dataset, backbone) in enumerate(sources):
            for method in _ordered([r["method"] for r in mine]):
                xs, ys, errs = [], [], []
                for x, size in enumerate(sizes):
                    cell = [r for r in mine if (r["dataset"], r["backbone"], r["method"], r["shots_per_class"])
                            == (dataset, backbone, method, size)]  # fmt: skip
                    mean, bar = _mean(cell, "test_accuracy")
                    if mean is not None:
                        xs.append(x)
                        ys.append(mean)
                        errs.append(bar)
                label = method if len(sources) == 1 else f"{method} ({dataset}, {backbone})"
                ax.errorbar(xs, ys, yerr=error_bars(errs), marker="o", capsize=3, label=label,
                            color=METHOD_COLORS.get(method), linestyle=_LINESTYLES[s_index % len(_LINESTYLES)])  # fmt: skip
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_xlabel("training rows per class")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{modality}: " + ", ".join(d for d, _ in sources))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, path)


def accuracy_vs_params(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Test accuracy against trainable parameters (log scale); a point per method and training size."""
    rows = [r for r in rows if r.get("trainable_params")]
    if not rows:
        return None
    fig, panels = _modality_panels(rows)
    for ax, modality, mine in panels:
        for method in _ordered([r["method"] for r in mine]):
            theirs = [r for r in mine if r["method"] == method]
            points = []
            for size in _ordered([r["shots_per_class"] for r in theirs]):
                cell = [r for r in theirs if r["shots_per_class"] == size]
                points.append((_mean(cell, "trainable_params")[0], _mean(cell, "test_accuracy")[0]))
            points = [(x, y) for x, y in points if x is not None and y is not None]
            ax.scatter([x for x, _ in points], [y for _, y in points], label=method, color=METHOD_COLORS.get(method), alpha=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters")
        ax.set_ylabel("test accuracy (a point per training size)")
        ax.set_title(modality)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, path)


def _grouped_bars(
    rows: list[dict[str, Any]],
    path: Path,
    series: list[tuple[str, Callable[[list[dict[str, Any]]], tuple[float | None, Bar]]]],
    ylabel: str,
    reference: tuple[str, str] | None = None,
) -> Path | None:
    """Per modality: a group of bars per method, one bar per series (label, rows -> (mean, error bar)).

    reference: (label, key) drawn as a dashed line at the mean of key over the modality's rows (e.g. k-NN before).
    """
    modalities = [m for m in _modalities(rows) if any(fn([r for r in rows if r["modality"] == m])[0] is not None
                                                      for _, fn in series)]  # fmt: skip
    if not modalities:
        return None
    fig, panels = _modality_panels(rows, modalities)
    width = 0.8 / len(series)
    for ax, modality, mine in panels:
        methods = _ordered([r["method"] for r in mine])
        for s_index, (label, fn) in enumerate(series):
            values = [fn([r for r in mine if r["method"] == m]) for m in methods]
            xs = [i + (s_index - (len(series) - 1) / 2) * width for i in range(len(methods))]
            ax.bar(xs, [v[0] or 0.0 for v in values], width, yerr=error_bars([v[1] for v in values]), capsize=2,
                   label=label, alpha=0.85)  # fmt: skip
        if reference is not None:
            mean = _mean(mine, reference[1])[0]
            if mean is not None:
                ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=reference[0])
        ax.set_xticks(range(len(methods)), methods, rotation=20)
        ax.set_ylabel(ylabel)
        ax.set_title(modality)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    return save(fig, path)


def _by(key: str) -> Callable[[list[dict[str, Any]]], tuple[float | None, Bar]]:
    return lambda rows: _mean(rows, key)


def training_time(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Training seconds per method, a bar per training size."""
    sizes = _ordered([r["shots_per_class"] for r in rows])
    series = [(f"{size} / class", lambda rs, s=size: _mean([r for r in rs if r["shots_per_class"] == s], "train_runtime_s"))
              for size in sizes]  # fmt: skip
    return _grouped_bars(rows, path, series, "training time (s, geometric mean)")


def shift(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """In-distribution vs shifted test accuracy per method (over every size and seed)."""
    if all(r.get("shift_mean_accuracy") is None for r in rows):
        return None
    rows = [r for r in rows if r.get("shift_mean_accuracy") is not None]
    return _grouped_bars(rows, path, [("test (in distribution)", _by("test_accuracy")),
                                      ("shifted test", _by("shift_mean_accuracy"))], "accuracy")  # fmt: skip


def forgetting(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Probe-task accuracy after minus before training (paired, same probe rows) per method, and CKA before/after;
    scratch left out (it never knew the source task), the linear probe is the zero-change control."""
    rows = [r for r in rows if r["method"] != "scratch" and (r.get("forgetting_change") is not None or r.get("cka") is not None)]
    if not rows:
        return None
    cka = "cka_debiased" if any(r.get("cka_debiased") is not None for r in rows) else "cka"
    return _grouped_bars(rows, path, [("after - before (probe rows)", _by("forgetting_change")),
                                      ("CKA before/after" + (" (debiased)" if cka == "cka_debiased" else ""), _by(cka))],
                         "accuracy change / CKA")  # fmt: skip


def word_error_rate(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Whisper: word error rate of the original decoder on the fine-tuned encoder (dashed: before fine-tuning)."""
    rows = [r for r in rows if r.get("wer_after") is not None]
    if not rows:
        return None
    return _grouped_bars(rows, path, [("WER after training", _by("wer_after"))], "word error rate",
                         reference=("WER before training", "wer_before"))  # fmt: skip


# (file name, caption, function): the report shows those that drew something, in this order.
FIGURES = [
    ("accuracy_vs_size.png", "Test accuracy against training size (mean over seeds, bars: 95% interval, inside [0, 1]), one panel per modality.",
     accuracy_vs_size),
    ("accuracy_vs_params.png", "Test accuracy against trainable parameters, a point per method and training size.",
     accuracy_vs_params),
    ("training_time.png", "Training time per method and training size (geometric mean over runs, bars: 95% t interval on the "
     "log seconds, aggregate.cell_interval).", training_time),
    ("shift.png", "In-distribution vs shifted test accuracy per method (mean over training sizes and seeds).", shift),
    ("forgetting.png", "Forgetting: accuracy on a different (probe) task with the trained backbone's features minus the "
     "source model's, on the same probe rows (bars: 95% interval), and linear CKA between features before and after "
     "training; scratch left out, the linear probe is the zero-change control.", forgetting),
    ("word_error_rate.png", "Forgetting (Whisper): word error rate of the original decoder with the trained encoder "
     "(dashed: before training).", word_error_rate),
]  # fmt: skip


def make_figures(rows: list[dict[str, Any]], out_dir: Path) -> list[tuple[Path, str]]:
    """Draw every figure the rows have data for; returns (png path, caption)."""
    drawn = []
    for name, caption, draw in FIGURES:
        path = draw(rows, Path(out_dir) / name)
        if path is not None:
            drawn.append((path, caption))
    return drawn
