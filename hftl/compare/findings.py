"""The report's written summary and its tables, generated from the measured numbers (never written by hand).

Every number comes with its 95% interval (stats.py says which interval where):
    transfer gain      each transfer method minus scratch, paired over seeds (never "best method minus scratch")
    LP-FT under shift  LP-FT vs full fine-tuning: in distribution, shifted (same rows), and shifted gain - ID gain
    forgetting         after - before on the same probe rows per method; the linear probe is the zero-change
                       control; scratch is left out (it never knew the source task); no "forgot least" ranking
    transferability    weighted tau and top-pick regret over candidate backbones, per data set and size
"""

from __future__ import annotations

from typing import Any

from hftl.compare import effects
from hftl.compare.stats import Estimate, bounded_interval, t_interval
from hftl.evaluation.ranking import Ranking, rank_candidates, reference_rankings
from hftl.run.methods import all_methods

TRANSFER_METHODS = tuple(m.name for m in all_methods() if m.transfer)
SCORES = (("logme", "LogME"), ("knn_transfer", "k-NN accuracy"), ("probe_transfer", "probe accuracy"))


def points(estimate: Estimate | None) -> str:
    return "-" if estimate is None else estimate.text(1, scale=100, sign=True) + " pt"


def _source(entry: dict[str, Any]) -> str:
    return f"{entry['modality']} ({entry['dataset']}, {entry['backbone']})"


GAIN_NOTE = ("Each transfer method is compared with scratch on the same seeds (the same training subsets), method by "
             "method. A 'best method minus scratch' figure would be biased upward (the maximum of several noisy "
             "means) and is not shown.")  # fmt: skip


def transfer_summary(rows: list[dict[str, Any]]) -> list[str]:
    gains = effects.transfer_gains(rows)
    if not gains:
        return ["Transfer gain needs scratch and transfer runs of the same data set, backbone, size and seeds; this "
                "grid has none."]  # fmt: skip
    lines = [GAIN_NOTE]
    for key in dict.fromkeys((g["modality"], g["dataset"], g["backbone"], g["shots_per_class"]) for g in gains):
        mine = [g for g in gains if (g["modality"], g["dataset"], g["backbone"], g["shots_per_class"]) == key]
        said = ", ".join(f"{g['method']} {points(g['gain'])}" for g in mine)
        line = f"{_source(mine[0])} at {key[3]} rows per class, minus scratch: {said}."
        variant = mine[0]["scratch_variant"]
        if variant != "converged":
            said = ("Whether scratch trained to convergence is not recorded here" if variant == "not recorded"
                    else "Scratch here stopped at its step cap (capped, not converged)" if variant == "capped"
                    else f"Scratch here ran {variant}")  # fmt: skip
            line += (f" {said}: unless it converged, the gain measures how much faster pre-trained models learn, not "
                     "what pre-training is worth.")  # fmt: skip
        lines.append(line)
    return lines


def gain_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["modality", "dataset", "backbone", "shots/class", "method", "minus scratch [95%]", "interval",
              "McNemar p (one seed pair)", "scratch"]  # fmt: skip
    return header, [
        [g["modality"], g["dataset"], g["backbone"], str(g["shots_per_class"]), g["method"], points(g["gain"]),
         g["gain"].method, "-" if g["mcnemar_p"] is None else f"{g['mcnemar_p']:.3g}", g["scratch_variant"]]
        for g in effects.transfer_gains(rows)
    ]  # fmt: skip


def shift_summary(rows: list[dict[str, Any]]) -> list[str]:
    entries = effects.shift_claims(rows, "lp_ft", "full")
    if not entries:
        same = any(r.get("shift_same_rows") for r in rows)
        return ["LP-FT vs full fine-tuning under shift needs lp_ft and full runs with shifted accuracy on the same test "
                "rows as in-distribution accuracy" + ("" if same else " (these runs have none: per_row.shift)") + "."]  # fmt: skip
    return [
        f"{_source(e)} at {e['shots_per_class']} rows per class, LP-FT minus full: {points(e['in_distribution'])} in "
        f"distribution, {points(e['shifted'])} shifted (same rows); shifted gain minus in-distribution gain "
        f"{points(e['claim'])} (Kumar et al.: about +9)."
        for e in entries
    ]  # fmt: skip


def forgetting_summary(rows: list[dict[str, Any]]) -> list[str]:
    entries = effects.forgetting_changes(rows)
    lines = []
    for key in dict.fromkeys((e["modality"], e["dataset"], e["backbone"], e["shots_per_class"]) for e in entries):
        mine = [e for e in entries if (e["modality"], e["dataset"], e["backbone"], e["shots_per_class"]) == key]
        said = ", ".join(f"{e['method']}{' (control)' if e['control'] else ''} {points(e['change'])}" for e in mine)
        line = (f"{_source(mine[0])} at {key[3]} rows per class: probe-task accuracy after minus before training "
                f"(on {mine[0]['probe_rows'] or 'the'} probe rows): {said}.")  # fmt: skip
        for e in mine:
            if e["control"] and e["change"].excludes_zero():
                line += (f" The control ({e['method']}) moved although it cannot change the backbone: the measurement "
                         "itself is suspect here.")  # fmt: skip
        lines.append(line)
    wer = [r for r in rows if r.get("wer_after") is not None and r.get("wer_before") is not None and r["method"] != "scratch"]
    for key, mine in effects.groups(wer).items():
        for method in dict.fromkeys(r["method"] for r in mine):
            change = t_interval(r["wer_after"] - r["wer_before"] for r in mine if r["method"] == method)
            lines.append(f"{key[0]} ({key[1]}, {key[2]}) at {key[3]} rows per class: word error rate of the original "
                         f"decoder with the trained encoder, after minus before, {method}: {points(change)}.")  # fmt: skip
    if lines:
        lines.append("Scratch runs are left out (they never had the source task's knowledge); methods are not ranked "
                     "by these numbers: compare two methods only where their intervals do not overlap.")  # fmt: skip
    return lines or ["No forgetting measurements in these runs (measure.forgetting)."]


def rankings(rows: list[dict[str, Any]]) -> list[Ranking]:
    return [r for score, _ in SCORES for method in TRANSFER_METHODS for r in rank_candidates(rows, score, method)]


def transferability_summary(rows: list[dict[str, Any]]) -> list[str]:
    """Sentences against the reference method only (fine-tuned accuracy, as LogME's paper); the table has them all."""
    found = [r for score, _ in SCORES for r in reference_rankings(rows, score)]
    if not found:
        counts = {(r["dataset"], r["shots_per_class"]) for r in rows}
        most = max((len({r["backbone"] for r in rows if (r["dataset"], r["shots_per_class"]) == k}) for k in counts), default=0)
        return [f"Transferability scores rank candidate backbones within one data set and size; this grid has at most "
                f"{most} backbone(s) per data set and size (3 or more needed), so nothing is ranked. Scores are not "
                "compared across methods (a method does not change its backbone's score) nor pooled over data sets."]  # fmt: skip
    lines = []
    for r in found:
        label = dict(SCORES)[r.score]
        spread = bounded_interval(r.seed_taus, -1.0, 1.0)
        line = (f"{r.modality} ({r.dataset}, {r.shots} rows per class), {label} vs {r.method} accuracy over "
                f"{len(r.candidates)} backbones: weighted tau {r.tau:.2f}"
                + (f" (over seeds {spread.text(2)})" if spread is not None else "")
                + f"; top-scored {r.top_scored}, best {r.best}, regret {100 * r.regret:.1f} pt.")  # fmt: skip
        if r.n_le_d and r.score == "logme":  # k-NN and the probe have no prior to be dominated by
            line += f" Scored with N <= D rows for {', '.join(r.n_le_d)}: LogME there is dominated by its prior."
        lines.append(line)
    return lines


def ranking_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["modality", "dataset", "shots/class", "score", "reference method", "candidates", "weighted tau",
              "tau over seeds [95%]", "top-scored", "best", "regret (pt) [95%]", "N <= D"]  # fmt: skip
    out = []
    for r in rankings(rows):
        # tau lives in [-1, 1], the regret (accuracy lost by the top pick) in [0, 1]: so do their intervals
        taus, regrets = bounded_interval(r.seed_taus, -1.0, 1.0), bounded_interval(r.seed_regrets, 0.0, 1.0)
        regrets = None if regrets is None else regrets.scaled(100)
        out.append([r.modality, r.dataset, str(r.shots), r.score, r.method, str(len(r.candidates)), f"{r.tau:.2f}",
                    "-" if taus is None else taus.text(2), r.top_scored, r.best,
                    f"{100 * r.regret:.1f}" + ("" if regrets is None else f" (seeds {regrets.text(1)})"),
                    ", ".join(r.n_le_d) or "no"])  # fmt: skip
    return header, out


def curve_summary(curve_rows: list[dict[str, Any]]) -> list[str]:
    """The learning-vs-forgetting curve (Biderman 2024): each method's test accuracy and forgetting change at every
    swept learning rate (accuracy: aggregate.cell_interval; forgetting change: t over seeds), from the reported and the curve runs (spec curve_methods)."""
    lines = []
    for entry in effects.learning_rate_sweep(curve_rows):
        said = "; ".join(
            f"{method} at {p['learning_rate']:g}{' (chosen on validation)' if p['learning_rate'] == entry['chosen'][method] else ''}: "
            f"accuracy {p['accuracy'].text(3) if p['accuracy'] else '-'}, forgetting change {points(p['forgetting'])}"
            for method in entry["methods"] for p in entry["points"][method]
        )  # fmt: skip
        lines.append(f"{_source(entry)} at {entry['shots_per_class']} rows per class: {said}.")
    return lines


def summary(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Section title -> sentences."""
    return {
        "Where transfer helped (each method minus scratch, paired)": transfer_summary(rows),
        "LP-FT vs full fine-tuning under shift": shift_summary(rows),
        "Forgetting (paired change on the probe rows)": forgetting_summary(rows),
        "Transferability: ranking candidate backbones": transferability_summary(rows),
    }
