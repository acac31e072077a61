"""The report's written summary, generated from the measured numbers (never written by hand).

    transfer gain      best transfer method's mean test accuracy minus scratch's, per modality, source and size
    LP-FT under shift  LP-FT vs full fine-tuning, in distribution and on the shifted test sets
    forgetting         k-NN accuracy on the probe task and CKA after training, per method; Whisper's WER
    transferability    Kendall tau between the scores taken before training (LogME, k-NN) and test accuracy
"""

from __future__ import annotations

from typing import Any

from hftl.compare.aggregate import mean_std
from hftl.run.methods import all_methods

TRANSFER_METHODS = tuple(m.name for m in all_methods() if m.transfer)


def _points(delta: float) -> str:
    return f"{100 * delta:+.1f} points"


def _sources(cells: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return list(dict.fromkeys((c["modality"], c["dataset"], c["backbone"]) for c in cells))


def _of(cells: list[dict[str, Any]], source: tuple[str, str, str]) -> list[dict[str, Any]]:
    return [c for c in cells if (c["modality"], c["dataset"], c["backbone"]) == source]


def transfer_gains(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (modality, dataset, backbone, size) with a scratch run and a transfer run: the gain and who got it."""
    gains = []
    for source in _sources(cells):
        mine = _of(cells, source)
        for size in dict.fromkeys(c["shots_per_class"] for c in mine):
            at = {c["method"]: c["test_accuracy_mean"] for c in mine if c["shots_per_class"] == size}
            transfer = {m: a for m, a in at.items() if m in TRANSFER_METHODS and a is not None}
            if at.get("scratch") is None or not transfer:
                continue
            best = max(transfer, key=transfer.get)
            gains.append({"modality": source[0], "dataset": source[1], "backbone": source[2], "shots_per_class": size,
                          "best_method": best, "best_accuracy": transfer[best], "scratch_accuracy": at["scratch"],
                          "gain": transfer[best] - at["scratch"]})  # fmt: skip
    return gains


def transfer_summary(cells: list[dict[str, Any]]) -> list[str]:
    gains = transfer_gains(cells)
    if not gains:
        return ["Transfer gain (best transfer method minus scratch) needs scratch runs and transfer runs of the same "
                "data set and size; this grid has none."]  # fmt: skip
    lines = []
    for source in dict.fromkeys((g["modality"], g["dataset"], g["backbone"]) for g in gains):
        mine = [g for g in gains if (g["modality"], g["dataset"], g["backbone"]) == source]
        most, least = max(mine, key=lambda g: g["gain"]), min(mine, key=lambda g: g["gain"])

        def said(g: dict[str, Any]) -> str:
            return (f"{g['shots_per_class']} rows per class ({_points(g['gain'])}: {g['best_method']} "
                    f"{g['best_accuracy']:.3f} vs scratch {g['scratch_accuracy']:.3f})")  # fmt: skip

        head = f"{source[0]} ({source[1]}, {source[2]}): "
        if len(mine) == 1 or _points(most["gain"]) == _points(least["gain"]):  # the same, as far as shown
            lines.append(head + f"transfer gain at {said(most)}" + ("." if len(mine) == 1 else ", the same at every size."))
        else:
            lines.append(head + f"transfer helped most at {said(most)} and least at {said(least)}.")
        if least["gain"] < 0:
            lines[-1] += f" Scratch beat every transfer method at {least['shots_per_class']} rows per class."
        best_by_size = ", ".join(f"{g['shots_per_class']}: {g['best_method']}" for g in mine)
        lines[-1] += f" Best transfer method by size: {best_by_size}."
    if len({g["modality"] for g in gains}) > 1:
        top, bottom = max(gains, key=lambda g: g["gain"]), min(gains, key=lambda g: g["gain"])
        lines.append(f"Across modalities the largest gain was {top['modality']} at {top['shots_per_class']} rows per "
                     f"class ({_points(top['gain'])}), the smallest {bottom['modality']} at "
                     f"{bottom['shots_per_class']} ({_points(bottom['gain'])}).")  # fmt: skip
    return lines


def _mean_of_cells(cells: list[dict[str, Any]], key: str) -> float | None:
    return mean_std(c[f"{key}_mean"] for c in cells)[0]


def shift_summary(cells: list[dict[str, Any]]) -> list[str]:
    """LP-FT vs full fine-tuning in distribution and under shift (Kumar et al.'s claim: full gains ID, loses OOD)."""
    if all(c["shift_mean_accuracy_mean"] is None for c in cells):
        return ["No shifted-test scores in these runs (measure.shift)."]
    lines = []
    for source in _sources(cells):
        mine = [c for c in _of(cells, source) if c["shift_mean_accuracy_mean"] is not None]
        by_method = {m: [c for c in mine if c["method"] == m] for m in dict.fromkeys(c["method"] for c in mine)}
        drops = ", ".join(
            f"{m} {_mean_of_cells(cs, 'test_accuracy'):.3f} -> {_mean_of_cells(cs, 'shift_mean_accuracy'):.3f}"
            for m, cs in by_method.items()
        )
        line = f"{source[0]} ({source[1]}): test accuracy in distribution -> shifted, mean over sizes: {drops}."
        pairs = [(a, b) for a in by_method.get("lp_ft", []) for b in by_method.get("full", [])
                 if a["shots_per_class"] == b["shots_per_class"]]  # fmt: skip
        if pairs:
            sizes = [a["shots_per_class"] for a, _ in pairs]
            lp_id, full_id = (_mean_of_cells([p[i] for p in pairs], "test_accuracy") for i in (0, 1))
            lp_sh, full_sh = (_mean_of_cells([p[i] for p in pairs], "shift_mean_accuracy") for i in (0, 1))
            wins = sum(a["shift_mean_accuracy_mean"] > b["shift_mean_accuracy_mean"] for a, b in pairs)
            if full_id >= lp_id and lp_sh > full_sh:
                verdict = "holds here: full fine-tuning is as good or better in distribution and LP-FT is better shifted"
            elif lp_sh > full_sh:
                verdict = "holds in part: LP-FT is better shifted, but full fine-tuning is not better in distribution"
            else:
                verdict = "does not hold here: LP-FT is not better than full fine-tuning on the shifted test sets"
            line += (f" LP-FT vs full: {_points(lp_id - full_id)} in distribution, {_points(lp_sh - full_sh)} shifted "
                     f"(LP-FT higher shifted at {wins} of {len(pairs)} sizes: {', '.join(map(str, sizes))}); "
                     f"the LP-FT claim {verdict}.")  # fmt: skip
        lines.append(line)
    return lines


def forgetting_summary(cells: list[dict[str, Any]]) -> list[str]:
    lines = []
    for source in _sources(cells):
        mine = _of(cells, source)
        methods = list(dict.fromkeys(c["method"] for c in mine))
        per = {m: [c for c in mine if c["method"] == m] for m in methods}
        knn = {m: (_mean_of_cells(cs, "knn_before"), _mean_of_cells(cs, "knn_after"), _mean_of_cells(cs, "cka"))
               for m, cs in per.items()}  # fmt: skip
        knn = {m: v for m, v in knn.items() if v[1] is not None}
        if knn:
            before = mean_std(v[0] for v in knn.values())[0]
            after = ", ".join(f"{m} {a:.3f}" + (f" (CKA {k:.2f})" if k is not None else "") for m, (_, a, k) in knn.items())
            kept = max(knn, key=lambda m: knn[m][1])
            lost = min(knn, key=lambda m: knn[m][1])
            lines.append(f"{source[0]} ({source[1]}, {source[2]}): k-NN accuracy on the probe task with the trained "
                         f"backbone's features (source model: {before:.3f}): {after}. Forgot least: {kept}; "
                         f"most: {lost}.")  # fmt: skip
        wer = {m: (_mean_of_cells(cs, "wer_before"), _mean_of_cells(cs, "wer_after")) for m, cs in per.items()}
        wer = {m: v for m, v in wer.items() if v[1] is not None}
        if wer:
            before = mean_std(v[0] for v in wer.values())[0]
            after = ", ".join(f"{m} {a:.3f}" for m, (_, a) in wer.items())
            lines.append(f"{source[0]} ({source[1]}, {source[2]}): word error rate of the original decoder with the "
                         f"trained encoder (before: {before:.3f}): {after}; forgot least: {min(wer, key=lambda m: wer[m][1])}.")  # fmt: skip
    return lines or ["No forgetting measurements in these runs (measure.forgetting)."]


def kendall_tau(rows: list[dict[str, Any]], score: str) -> dict[str, Any] | None:
    """Kendall tau between a transferability score and test accuracy: over all runs, and within each data set and size.

    Scores of different data sets and sizes are on different scales, so the within-group mean is the fairer figure.
    """
    from scipy.stats import kendalltau

    paired = [r for r in rows if r.get(score) is not None and r.get("test_accuracy") is not None]
    if len(paired) < 3:
        return None
    overall = kendalltau([r[score] for r in paired], [r["test_accuracy"] for r in paired])
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in paired:
        groups.setdefault((r["dataset"], r["shots_per_class"]), []).append(r)
    within = []
    for members in groups.values():
        if len(members) >= 3:
            tau = kendalltau([r[score] for r in members], [r["test_accuracy"] for r in members]).statistic
            if tau == tau:  # NaN when a side is constant
                within.append(float(tau))
    return {"score": score, "n": len(paired), "tau": float(overall.statistic), "p": float(overall.pvalue),
            "within_mean": mean_std(within)[0], "groups": len(within)}  # fmt: skip


def transferability_summary(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for score, label in (("logme", "LogME"), ("knn_transfer", "k-NN accuracy of frozen features")):
        result = kendall_tau(rows, score)
        if result is None:
            continue
        line = (f"Kendall tau between {label} (before training) and test accuracy: tau = {result['tau']:.2f} "
                f"(p = {result['p']:.3g}, {result['n']} runs)")  # fmt: skip
        if result["within_mean"] is not None:
            line += f"; within a data set and size, mean tau = {result['within_mean']:.2f} over {result['groups']} groups"
        lines.append(line + ".")
    return lines or ["No transferability scores in these runs (measure.transferability)."]


def summary(rows: list[dict[str, Any]], cells: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Section title -> sentences."""
    return {
        "Where transfer helped": transfer_summary(cells),
        "LP-FT vs full fine-tuning under shift": shift_summary(cells),
        "Forgetting": forgetting_summary(cells),
        "Transferability scores vs fine-tuned accuracy": transferability_summary(rows),
    }
