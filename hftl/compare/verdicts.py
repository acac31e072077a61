"""The verdict table: published claims of the transfer-learning literature against hftl's measurements, per modality.

    claim (paper, published number) | modality | hftl's measurement with its 95% interval | verdict | why

The decision rules (explicit, and tested on constructed inputs):
    direction claim  the interval excludes 0 on the claimed side: agrees; on the other side: disagrees; holds 0 (or
                     there is no interval: one replicate): inconclusive. Magnitudes are shown, not judged: our data
                     sets, models and budgets are not the papers'.
    two-part claim   (Biderman: learns less AND forgets less) agrees when every part agrees, disagrees when any
                     part disagrees, else inconclusive.
    band claim       (LogME's weighted tau 0.50-0.79) the interval overlaps the band and lies above 0: agrees; it lies
                     wholly below or wholly above the band: disagrees; else (it reaches 0 or below): inconclusive.
    missing evidence "not measured", saying what is missing; never a guess.
LogME is judged on the (data set, size) groups whose every candidate was scored with more rows than feature dimensions
(N > D, the published regime) where any exist, else on all groups, flagged N <= D.
Kornblith and LogME each have two rows, one per reference: full fine-tuning (the published fine-tuned protocol; LogME's
reference is each candidate's fine-tuned accuracy at its rate chosen on validation) and the linear probe (Kornblith's
fixed-feature claim; for LogME a labelled non-published reference). A row never falls back to the other's method.
A modality's estimate: its one (data set, size) group's paired estimate, or with several groups the mean over groups
with a t interval over the group estimates (between-group spread; conservative with few groups).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from hftl.compare import effects
from hftl.compare.grid import backbone_label
from hftl.compare.stats import Estimate, bounded_interval, t_interval
from hftl.evaluation.ranking import Ranking, published_regime, rank_candidates
from hftl.zoo.candidates import parse_candidate

AGREES, DISAGREES, INCONCLUSIVE, NOT_MEASURED = "agrees", "disagrees", "inconclusive", "not measured"
LOGME_BAND = (0.50, 0.79)  # TLlib's model-selection table: Pets 0.502 ... CIFAR-100 0.790
# ImageNet-1k top-1 of the EfficientNet-Lite family (TensorFlow's EfficientNet-Lite release), the source quality axis.
EFFICIENTNET_LITE_TOP1 = {"lite0": 75.1, "lite1": 76.7, "lite2": 77.6}


@dataclass
class Claim:
    key: str
    paper: str
    statement: str
    published: str
    judge: Callable[[Claim, str, list[dict[str, Any]]], dict[str, str]]  # (claim, modality, its rows) -> table row
    # judged on the reported runs (one rate per method: the chosen one) plus the learning-rate curve's runs (spec
    # curve_methods: every seed at the other swept rates)
    on_curve: bool = False




def _no_interval(estimate: Estimate) -> str:
    """Why an estimate has no interval: one replicate, or several with no spread between them."""
    if estimate.n == 1:
        return "no interval (1 replicate)"
    return f"no interval ({estimate.n} replicates, no spread between them)"


def direction_verdict(estimate: Estimate | None, sign: int) -> tuple[str, str]:
    """The direction rule (module docstring); sign: +1 the claim says > 0, -1 < 0."""
    if estimate is None:
        return NOT_MEASURED, "no paired runs"
    if not estimate.has_interval:
        return INCONCLUSIVE, _no_interval(estimate)
    side = estimate.excludes_zero()
    if side == sign:
        return AGREES, f"the interval excludes 0 on the claimed side ({'>' if sign > 0 else '<'} 0)"
    if side == -sign:
        return DISAGREES, f"the interval excludes 0 on the other side ({'<' if sign > 0 else '>'} 0)"
    return INCONCLUSIVE, "the interval holds 0"


def joint_verdict(parts: list[tuple[str, str]]) -> tuple[str, str]:
    """Every part agrees: agrees; any disagrees: disagrees; a part not measured: not measured; else inconclusive."""
    verdicts = [v for v, _ in parts]
    why = "; ".join(w for _, w in parts)
    if NOT_MEASURED in verdicts:
        return NOT_MEASURED, why
    if DISAGREES in verdicts:
        return DISAGREES, why
    return (AGREES if all(v == AGREES for v in verdicts) else INCONCLUSIVE), why


def band_verdict(estimate: Estimate | None, band: tuple[float, float] = LOGME_BAND) -> tuple[str, str]:
    """The band rule (module docstring)."""
    if estimate is None:
        return NOT_MEASURED, "no ranking"
    if not estimate.has_interval:
        return INCONCLUSIVE, _no_interval(estimate)
    if estimate.high < band[0] or estimate.low > band[1]:
        return DISAGREES, f"the interval lies {'below' if estimate.high < band[0] else 'above'} {band[0]:.2f}-{band[1]:.2f}"
    if estimate.low > 0:
        return AGREES, f"the interval overlaps {band[0]:.2f}-{band[1]:.2f} and lies above 0"
    return INCONCLUSIVE, "the interval overlaps the band but reaches 0"


def combine(estimates: list[Estimate]) -> Estimate | None:
    """One modality's estimate from its groups' (module docstring)."""
    if not estimates:
        return None
    if len(estimates) == 1:
        return estimates[0]
    pooled = t_interval(e.value for e in estimates)
    return Estimate(pooled.value, pooled.low, pooled.high, len(estimates), "t over groups")


def _points(estimate: Estimate | None) -> str:
    return "-" if estimate is None else estimate.text(1, scale=100, sign=True) + " pt"


def _groups_text(entries: list[dict[str, Any]], key: str, fmt: Callable[[Estimate], str] = _points) -> str:
    shown = [f"{e['dataset']}/{backbone_label(e['backbone'])} @{e['shots_per_class']}: {fmt(e[key])}" for e in entries[:4]]
    return "; ".join(shown) + (f"; ... {len(entries) - 4} more" if len(entries) > 4 else "")


def _row(claim: Claim, modality: str, estimate: Estimate | None, detail: str, verdict: tuple[str, str],
         fmt: Callable[[Estimate | None], str] = _points) -> dict[str, str]:
    measured = fmt(estimate) if estimate is not None else "-"
    if detail and estimate is not None and estimate.method == "t over groups":
        measured += f" (mean of {estimate.n} groups: {detail})"
    elif detail:
        measured += f" ({detail})"
    return {"key": claim.key, "claim": f"{claim.paper}: {claim.statement}", "published": claim.published, "modality": modality,
            "measured": measured, "verdict": verdict[0], "why": verdict[1]}  # fmt: skip


def _missing(claim: Claim, modality: str, what: str) -> dict[str, str]:
    return _row(claim, modality, None, "", (NOT_MEASURED, what))


def _kumar(claim: Claim, modality: str, rows: list[dict[str, Any]], *, method: str, baseline: str, sign: int) -> dict[str, str]:
    entries = effects.shift_claims(rows, method, baseline)
    if not entries:
        return _missing(claim, modality, f"needs {method} and {baseline} runs with shifted and in-distribution "
                                         "accuracy on the same test rows (per_row.shift)")  # fmt: skip
    estimate = combine([e["claim"] for e in entries])
    return _row(claim, modality, estimate, _groups_text(entries, "claim"), direction_verdict(estimate, sign))


def _biderman(claim: Claim, modality: str, rows: list[dict[str, Any]]) -> dict[str, str]:
    entries = [e for e in effects.learning_rate_sweep(rows) if e["learns"] is not None and e["forgets"] is not None]
    if not entries:
        return _missing(claim, modality, "needs lora and full runs at 2 or more learning rates each, with "
                                         "forgetting measured (a learning-rate sweep)")  # fmt: skip
    learns, forgets = combine([e["learns"] for e in entries]), combine([e["forgets"] for e in entries])
    verdict = joint_verdict([direction_verdict(learns, -1), direction_verdict(forgets, +1)])
    detail = f"learns {_points(learns)}, forgetting change {_points(forgets)}"
    row = _row(claim, modality, None, "", verdict)
    rates = "; ".join(f"{e['dataset']} @{e['shots_per_class']}: " + " vs ".join(f"{m} {e['chosen'][m]:g}" for m in e["methods"])
                      for e in entries[:3])  # fmt: skip
    row["measured"] = detail + f" ({len(entries)} groups, at each method's best-validation learning rate: {rates})"
    return row


def _he(claim: Claim, modality: str, rows: list[dict[str, Any]]) -> dict[str, str]:
    scratch = [r for r in rows if r["method"] == "scratch" and r.get("test_accuracy") is not None]
    unconverged = [str(effects.run_variant(r) or "not recorded") for r in scratch if effects.run_variant(r) != "converged"]
    if unconverged:  # the first reason to give: more sizes would not help a scratch that never finished training
        kinds = ", ".join(f"{unconverged.count(k)} {k}" for k in dict.fromkeys(unconverged))
        caps = "/".join(str(c) for c in sorted({r.get("cap_steps") for r in scratch if r.get("cap_steps")}))
        sizes = len({r["shots_per_class"] for r in scratch})
        return _missing(claim, modality, f"scratch did not train to convergence in {len(unconverged)} of {len(scratch)} "
                                         f"runs ({kinds}{f'; {caps}-step cap' if caps else ''}): capped, not "
                                         "converged, so full - scratch measures convergence speed, not what "
                                         "pre-training is worth"
                                         + ("; and one training size (needs 2 or more)" if sizes < 2 else ""))  # fmt: skip
    entries = effects.scratch_gaps(rows)
    if not entries:
        return _missing(claim, modality, "needs full and scratch runs at 2 or more training sizes")
    converged = [e for e in entries if e["scratch_variant"] == "converged"]
    if not converged:
        found = ", ".join(sorted({e["scratch_variant"] for e in entries}))
        return _missing(claim, modality, f"scratch was not trained to convergence (study.variant: {found}); a "
                                         "fixed budget measures convergence speed, not what pre-training is worth")  # fmt: skip
    estimate = combine([e["shrink"] for e in converged if e["shrink"] is not None])
    detail = "; ".join(f"{e['dataset']}/{backbone_label(e['backbone'])}: {_points(e['gap_small'])} at {e['small']}/class -> {_points(e['gap_large'])} "
                       f"at {e['large']}/class" for e in converged[:3])  # fmt: skip
    return _row(claim, modality, estimate, detail, direction_verdict(estimate, +1))


def _lite(backbone: str, name: str) -> bool:
    """The pretrained, whole EfficientNet-Lite ``name`` (its @Lk / @random variants are other candidates)."""
    candidate = parse_candidate(backbone)
    if candidate.keep_layers is not None or candidate.init != "pretrained":
        return False
    label = candidate.source.lower().replace("_", "-").rstrip("/")
    return f"efficientnet-{name}" in label or label.endswith(name)


def _kornblith(claim: Claim, modality: str, rows: list[dict[str, Any]], *, method: str) -> dict[str, str]:
    """Lite2 minus Lite0 under ONE method, paired per seed: the fine-tuned claim reads full fine-tuning only, the
    fixed-feature claim the linear probe only (pooling them would mix two published correlations)."""
    backbones = list(dict.fromkeys(r["backbone"] for r in rows))
    lite0 = [b for b in backbones if _lite(b, "lite0")]
    lite2 = [b for b in backbones if _lite(b, "lite2")]
    if not any("efficientnet-lite" in parse_candidate(b).source.lower().replace("_", "-") for b in backbones):
        # text and audio candidates have no ImageNet accuracy to order them by: nothing is missing that a run could add
        return _missing(claim, modality, f"a claim about ImageNet classifiers (the EfficientNet-Lite family): none of "
                                         f"this grid's {modality} candidates is one")  # fmt: skip
    if not lite0 or not lite2:
        return _missing(claim, modality, "needs EfficientNet-Lite0 and -Lite2 runs of this modality")
    entries = effects.backbone_difference(rows, lite2[0], lite0[0], method)
    if not entries:
        return _missing(claim, modality, f"needs {method} runs of Lite0 and Lite2 at the same size and seeds")
    estimate = combine([e["difference"] for e in entries])
    detail = "; ".join(f"{e['method']} @{e['shots_per_class']}: {_points(e['difference'])}" for e in entries[:4])
    return _row(claim, modality, estimate, detail, direction_verdict(estimate, +1))


def _logme(claim: Claim, modality: str, rows: list[dict[str, Any]], *, method: str) -> dict[str, str]:
    """LogME's weighted tau against each candidate's accuracy under ``method`` (the published protocol: full
    fine-tuning, its learning rate chosen on validation), per seed subset; the regret of the top pick per seed."""
    found = rank_candidates(rows, "logme", method)
    if not found:
        return _missing(claim, modality, f"needs LogME scores and {method} runs of 3 or more candidate backbones per "
                                         "data set and size")  # fmt: skip
    rankings, set_aside = published_regime(found)  # N > D groups where any (the ranking table shows every group)
    # tau lives in [-1, 1], the regret (accuracy lost by the top pick) in [0, 1]: so do their intervals, over the
    # same replicates (every group's seeds; each group's one value where no group has per-seed values)
    tau = bounded_interval(_replicates(rankings, "seed_taus", "tau"), -1.0, 1.0)
    estimate = None if tau is None else replace(tau, method=f"{tau.method} x groups")
    regret = bounded_interval(_replicates(rankings, "seed_regrets", "regret"), 0.0, 1.0)
    small = sorted({c for r in rankings for c in r.n_le_d})
    groups = f"{len(rankings)} data set/size group" + ("s" if len(rankings) != 1 else "")
    detail = (f"against {method} accuracy, {groups}, {len(rankings[0].candidates)} "
              f"candidates; regret of the top pick {_points(regret)}"
              + (f"; N <= D for {', '.join(small)}" if small else "")
              + (f"; judged on the N > D group(s) only, {set_aside} N <= D group(s) set aside" if set_aside else ""))  # fmt: skip
    return _row(claim, modality, estimate, detail, band_verdict(estimate), fmt=lambda e: "-" if e is None else e.text(2))


def _replicates(rankings: list[Ranking], per_seed: str, per_group: str) -> list[float]:
    """The values behind a ranking interval: every group's per-seed values, else each group's one value."""
    return [v for r in rankings for v in getattr(r, per_seed)] or [getattr(r, per_group) for r in rankings]


CLAIMS = [
    Claim("kumar_lpft", "Kumar et al. 2022 (LP-FT)", "LP-FT vs full fine-tuning gains more out of distribution than in "
          "distribution: (shifted gain - in-distribution gain) > 0", "+1% ID, +10% OOD over 10 shift data sets",
          partial(_kumar, method="lp_ft", baseline="full", sign=+1)),
    Claim("kumar_ft", "Kumar et al. 2022 (LP-FT)", "full fine-tuning vs linear probe gains less out of distribution "
          "than in distribution: (shifted gain - in-distribution gain) < 0", "+2% ID, -7% OOD",
          partial(_kumar, method="full", baseline="linear_probe", sign=-1)),
    Claim("biderman", "Biderman et al. 2024", "LoRA learns less (accuracy lora - full < 0) and forgets less "
          "(forgetting change lora - full > 0) along a learning-rate sweep", "same learning-forgetting curve", _biderman,
          on_curve=True),
    Claim("he", "He, Girshick, Dollar 2019", "scratch catches up with data: (full - scratch) shrinks from the "
          "smallest to the largest training size", "scratch matches pretrained at ~10k COCO images", _he),
    Claim("kornblith_ft", "Kornblith, Shlens, Le 2019", "a better ImageNet model transfers better, fine-tuned: "
          "EfficientNet-Lite2 (77.6% top-1) minus Lite0 (75.1%), full fine-tuning accuracy > 0", "r = 0.96 (fine-tuned)",
          partial(_kornblith, method="full")),
    Claim("kornblith_fixed", "Kornblith, Shlens, Le 2019", "a better ImageNet model transfers better, as fixed "
          "features: EfficientNet-Lite2 minus Lite0, linear-probe accuracy > 0", "r = 0.99 (fixed features)",
          partial(_kornblith, method="linear_probe")),
    Claim("logme", "You et al. 2021 (LogME)", "LogME ranks candidate backbones by their tuned fine-tuned (full) accuracy "
          "with weighted Kendall tau in the published band", "0.50-0.79 (8 data sets, ~10 candidates)",
          partial(_logme, method="full")),
    Claim("logme_probe", "You et al. 2021 (LogME)", "LogME ranks candidate backbones by LINEAR-PROBE accuracy (not the "
          "published reference, which is fine-tuned accuracy) with weighted Kendall tau in the band",
          "0.50-0.79 (against fine-tuned accuracy)", partial(_logme, method="linear_probe")),
]  # fmt: skip


CURVE_POINT = ("modality", "dataset", "backbone", "shots_per_class", "method", "learning_rate", "seed")


def with_curve(rows: list[dict[str, Any]], curve_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reported rows and the curve's, each (cell, rate, seed) once: a curve run that repeats a reported run
    (grids run before the curve skipped the chosen rate) would count that seed twice."""
    seen = {tuple(r.get(k) for k in CURVE_POINT) for r in rows}
    return [*rows, *(r for r in curve_rows if tuple(r.get(k) for k in CURVE_POINT) not in seen)]


def verdict_table(rows: list[dict[str, Any]], curve_rows: list[dict[str, Any]] = ()) -> list[dict[str, str]]:
    """One row per claim and modality measured (rows: aggregate.collect's of the reported runs; curve_rows: of the
    learning-rate curve's runs, which only on_curve claims read, beside the reported ones)."""
    out = []
    for modality in dict.fromkeys(r["modality"] for r in rows):
        mine = [r for r in rows if r["modality"] == modality]
        curve = with_curve(mine, [r for r in curve_rows if r["modality"] == modality])
        out += [claim.judge(claim, modality, curve if claim.on_curve else mine) for claim in CLAIMS]
    return out


HEADER = ["claim", "published", "modality", "hftl's measurement [95%]", "verdict", "why"]


def table_cells(verdicts: list[dict[str, str]]) -> list[list[str]]:
    return [[v["claim"], v["published"], v["modality"], v["measured"], v["verdict"], v["why"]] for v in verdicts]


RULES = (
    "Rules: a direction claim agrees when the 95% interval excludes 0 on the claimed side, disagrees when it excludes "
    "0 on the other side, else inconclusive; a two-part claim agrees when both parts agree; the LogME band claim agrees "
    "when the interval overlaps 0.50-0.79 and lies above 0, disagrees when it lies wholly outside the band. "
    "Published magnitudes are shown for reference, not judged. Missing evidence: not measured."
)
