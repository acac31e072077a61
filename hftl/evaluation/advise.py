"""`hftl advise`: rank candidate backbones (and layers) on the user's data by frozen-feature scores, and recommend a
transfer method for the data size, from a measured grid (``hftl compare``'s results.csv) or a stated rule of thumb.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hftl import zoo
from hftl.config import Config, ModelConfig, load_config
from hftl.errors import DataError
from hftl.evaluation.features import load_backbone, num_layers, split_features, spread_layers
from hftl.evaluation.ranking import finite_number, published_regime, reference_rankings
from hftl.evaluation.transferability import knn_accuracy, logme, probe_accuracy
from hftl.modalities import get_modality, registered_modalities
from hftl.run.data import load_splits
from hftl.run.models import resolve_model_source

RULE_OF_THUMB = (
    "rule of thumb (no measured grid): under 10 examples per class, linear_probe (a frozen backbone cannot overfit "
    "the few examples); 10 to 100, lora (adapts the backbone with few weights); 100 or more, full fine-tuning "
    "(enough data to move every weight; lp_ft, a linear probe first, keeps more robustness under shift)"
)


@dataclass
class BackboneScore:
    model: str
    layer: int  # backbone layer the features come from (the last unless --layers)
    last_layer: int
    logme: float
    knn_accuracy: float
    probe_accuracy: float
    seconds: float  # loading + features (shared by a model's layers) + this layer's scores


@dataclass
class Recommendation:
    method: str
    reason: str
    table: list[dict[str, Any]]  # per method at the chosen size: method, mean, std, runs
    regret: str = ""  # what trusting LogME's top pick cost in the measured grid (empty: not measured there)


def shots_per_class(labels: np.ndarray) -> float:
    """Training examples per class (the median over classes, so one large class does not decide)."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return float(np.median(counts))


def score_backbones(
    cfg: Config, models: list[str], layers: bool = False, max_samples: int = 500, k: int = 5
) -> tuple[list[BackboneScore], dict[str, Any]]:
    """Scores of each model's frozen features on cfg.data: LogME on train, k-NN and probe accuracy train -> validation.

    Returns:
        The scores, best LogME first, and facts about the data (sizes, classes, shots per class).
    """
    modality = get_modality(cfg.modality)
    splits, names = load_splits(cfg.data)
    train_labels = np.asarray(splits["train"][cfg.data.label_column])
    scores = []
    for source in models:
        started = time.perf_counter()
        model_cfg = dataclasses.replace(cfg, model=ModelConfig(source=source))
        model, processor = load_backbone(model_cfg, modality, names)
        last = num_layers(model)
        which = spread_layers(last) if layers else [last]
        train, y_train = split_features(model, modality, processor, model_cfg, splits["train"], max_samples, which)
        val, y_val = split_features(model, modality, processor, model_cfg, splits["validation"], max_samples, which)
        shared = time.perf_counter() - started
        for layer in which:
            tick = time.perf_counter()
            logme_score = logme(train[layer], y_train)
            knn = knn_accuracy(train[layer], y_train, val[layer], y_val, k=k)
            probe = probe_accuracy(train[layer], y_train, val[layer], y_val)
            seconds = shared + time.perf_counter() - tick
            scores.append(BackboneScore(source, layer, last, logme_score, knn, probe, round(seconds, 2)))
    scores.sort(key=lambda s: -s.logme)
    data = {
        "source": cfg.data.source,
        "modality": cfg.modality,
        "classes": len(names),
        "train": len(train_labels),
        "validation": len(splits["validation"]),
        "shots_per_class": shots_per_class(train_labels),
        "scored_rows": min(len(train_labels), max_samples),
    }
    return scores, data


def rule_of_thumb(shots: float) -> Recommendation:
    method = "linear_probe" if shots < 10 else "lora" if shots < 100 else "full"
    return Recommendation(method, RULE_OF_THUMB, [])


def _row_shots(rows: list[dict[str, str]]) -> list[float | None]:
    """Shots per class of each grid row: the number itself, or for "all" train_size / classes, the class count
    taken from the same data set's rows with a number (train_size / shots); None when it cannot be told."""
    classes: dict[str, list[float]] = {}
    for row in rows:
        shots, size = finite_number(row.get("shots_per_class", "")), finite_number(row.get("train_size", ""))
        if shots and size:
            classes.setdefault(row.get("dataset", ""), []).append(size / shots)
    out = []
    for row in rows:
        shots, size = finite_number(row.get("shots_per_class", "")), finite_number(row.get("train_size", ""))
        if shots:
            out.append(shots)
        elif size and row.get("dataset", "") in classes:
            out.append(size / round(float(np.median(classes[row["dataset"]]))))
        else:
            out.append(None)
    return out


def recommend_from_grid(grid_dir: str | Path, modality: str, shots: float) -> Recommendation | None:
    """The method with the best mean test accuracy at the measured training size nearest ``shots`` (per class, on a
    log scale), over the grid's rows of ``modality`` (all its data sets, backbones and seeds); None without such rows.

    Raises:
        DataError: results.csv is missing or lacks the contract's columns.
    """
    path = Path(grid_dir) / "results.csv"
    if not path.is_file():
        raise DataError(f"--grid {grid_dir}: no results.csv there (write one with `hftl compare`)")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    needed = {"modality", "dataset", "method", "shots_per_class", "train_size", "test_accuracy"}
    missing = needed - set(rows[0] if rows else needed)
    if missing:
        raise DataError(f"{path}: missing columns {sorted(missing)}")
    rows_all = rows
    rows = [r for r in rows if r["modality"] == modality and finite_number(r["test_accuracy"]) is not None]
    measured = [(r, s) for r, s in zip(rows, _row_shots(rows), strict=True) if s]
    if not measured:
        return None
    nearest = min({s for _, s in measured}, key=lambda s: (abs(math.log(s) - math.log(max(shots, 1e-9))), s))
    by_method: dict[str, list[float]] = {}
    for row, s in measured:
        if s == nearest:
            by_method.setdefault(row["method"], []).append(float(row["test_accuracy"]))
    table = sorted(
        ({"method": m, "mean": float(np.mean(v)), "std": float(np.std(v)), "runs": len(v)} for m, v in by_method.items()),
        key=lambda t: -t["mean"],
    )
    best = table[0]
    regret = expected_regret(rows_all, modality)
    reason = (
        f"measured grid {path}: {modality} runs at {nearest:g} examples per class (nearest to your {shots:g}); "
        f"best mean test accuracy: {best['method']} {best['mean']:.3f} +- {best['std']:.3f} over {best['runs']} runs"
    )
    return Recommendation(best["method"], reason, table, regret)


def expected_regret(rows: list[dict[str, str]], modality: str) -> str:
    """What picking the top-LogME candidate lost in a measured grid's data sets and sizes of ``modality`` (empty when
    no data set there had 3 or more candidate backbones with LogME scores)."""
    found = reference_rankings([r for r in rows if r.get("modality") == modality], "logme")
    if not found:
        return ""
    # the groups the study's LogME verdict judges (compare/verdicts.py): N > D ones where any, so both say the same
    rankings, set_aside = published_regime(found)
    regrets = [100 * r.regret for r in rankings]
    taus = [r.tau for r in rankings]
    worst = max(rankings, key=lambda r: r.regret)
    small = sum(bool(r.n_le_d) for r in rankings)
    return (f"expected regret of trusting LogME's top pick, measured on {len(rankings)} {modality} data set/size "
            f"group(s) against {rankings[0].method} accuracy: {np.mean(regrets):.1f} points on average (worst "
            f"{max(regrets):.1f}: {worst.dataset} at {worst.shots}/class); weighted tau {np.mean(taus):.2f} on average"
            + (f"; {small} group(s) scored with N <= D rows" if small else "")
            + (f"; {set_aside} N <= D group(s) set aside (LogME's published regime is N > D)" if set_aside else ""))  # fmt: skip


def format_report(scores: list[BackboneScore], data: dict[str, Any], advice: Recommendation, k: int) -> str:
    lines = [
        f"data {data['source']} ({data['modality']}): {data['train']} train / {data['validation']} validation rows, "
        f"{data['classes']} classes, {data['shots_per_class']:g} per class; scored on up to {data['scored_rows']} "
        "training rows (stratified)",
        "",
        f"{'rank':<5}{'model':<40}{'layer':>7}{'LogME':>10}{f'kNN@{k}':>9}{'probe':>8}{'seconds':>9}",
    ]
    for rank, s in enumerate(scores, start=1):
        layer = f"{s.layer}/{s.last_layer}"
        name = s.model if len(s.model) <= 38 else "..." + s.model[-35:]
        lines.append(
            f"{rank:<5}{name:<40}{layer:>7}{s.logme:>10.4f}{s.knn_accuracy:>9.3f}{s.probe_accuracy:>8.3f}{s.seconds:>9.1f}"
        )
    best = scores[0]
    lines += [
        "",
        "LogME: evidence of a linear model on frozen features, per sample (higher is better; compare on the same data "
        f"only). kNN@{k}: cosine k-NN accuracy, train -> validation. probe: logistic regression on the frozen features.",
        f"best backbone by LogME: {best.model} (layer {best.layer}/{best.last_layer})",
        f"recommended method: {advice.method}",
        f"  {advice.reason}",
    ]
    for t in advice.table:
        lines.append(f"    {t['method']:<14}{t['mean']:.3f} +- {t['std']:.3f}  ({t['runs']} runs)")
    if advice.regret:
        lines.append(f"  {advice.regret}")
    return "\n".join(lines)


def infer_modality(data_source: str, models: list[str]) -> str:
    """The modality of a zoo data set, else of the first model (its model_type among the modalities' known ones).

    Raises:
        DataError: neither tells; the message asks for --modality.
    """
    if data_source.startswith("zoo:"):
        return zoo.get(data_source[len("zoo:") :]).modality
    try:
        from transformers import AutoConfig

        model_type = AutoConfig.from_pretrained(resolve_model_source(models[0])).model_type
    except (OSError, ValueError):
        model_type = None
    for name in registered_modalities():
        if model_type in get_modality(name).lora_targets:
            return name
    raise DataError(f"cannot tell the modality of {data_source} with {models[0]}: pass --modality {'|'.join(registered_modalities())}")


def advise_config(data_source: str, models: list[str], modality: str | None, overrides: list[str]) -> Config:
    """The run config the candidates are scored with: the data options of training (key=value overrides)."""
    modality = modality or infer_modality(data_source, models)
    given = {o.partition("=")[0] for o in overrides}
    defaults = [] if "data.input_column" in given else [f"data.input_column={get_modality(modality).default_input_column}"]
    return load_config(None, [f"modality={modality}", f"data.source={data_source}", *defaults, *overrides])


def advise(
    cfg: Config, models: list[str], layers: bool = False, grid: str | None = None, max_samples: int = 500, k: int = 5
) -> str:
    """Score the candidates on cfg.data and recommend a method; returns the report to print."""
    scores, data = score_backbones(cfg, models, layers=layers, max_samples=max_samples, k=k)
    advice = recommend_from_grid(grid, cfg.modality, data["shots_per_class"]) if grid else None
    if advice is None:
        advice = rule_of_thumb(data["shots_per_class"])
        if grid:
            advice.reason = f"the grid in {grid} has no {cfg.modality} runs; {advice.reason}"
    return format_report(scores, data, advice, k)
