"""The verdict rules on constructed estimates, then each claim on constructed result rows: agrees, disagrees,
inconclusive and not measured, each reached on purpose."""

from __future__ import annotations

import pytest

from hftl.compare import effects, findings, verdicts
from hftl.compare.aggregate import PER_ROW
from hftl.compare.stats import Estimate

E = lambda v, lo, hi: Estimate(v, lo, hi, 5, "paired t over seeds")  # noqa: E731


@pytest.mark.parametrize(("estimate", "sign", "expected"), [
    (E(0.05, 0.01, 0.09), +1, "agrees"),
    (E(-0.05, -0.09, -0.01), +1, "disagrees"),
    (E(0.02, -0.01, 0.05), +1, "inconclusive"),
    (E(-0.05, -0.09, -0.01), -1, "agrees"),
    (Estimate(0.05, None, None, 1, "none"), +1, "inconclusive"),
    (None, +1, "not measured"),
])  # fmt: skip
def test_direction_rule(estimate, sign, expected):
    assert verdicts.direction_verdict(estimate, sign)[0] == expected


@pytest.mark.parametrize(("low", "high", "expected"), [
    (0.40, 0.60, "agrees"),  # overlaps the band, above 0
    (0.10, 0.45, "disagrees"),  # wholly below 0.50
    (0.81, 0.95, "disagrees"),  # wholly above 0.79
    (-0.20, 0.70, "inconclusive"),  # overlaps the band but reaches 0
])  # fmt: skip
def test_band_rule(low, high, expected):
    assert verdicts.band_verdict(E((low + high) / 2, low, high))[0] == expected


def test_two_part_rule_and_combining_groups():
    agree, disagree, unsure = ("agrees", ""), ("disagrees", ""), ("inconclusive", "")
    assert verdicts.joint_verdict([agree, agree])[0] == "agrees"
    assert verdicts.joint_verdict([agree, unsure])[0] == "inconclusive"
    assert verdicts.joint_verdict([unsure, disagree])[0] == "disagrees"
    assert verdicts.joint_verdict([agree, ("not measured", "x")])[0] == "not measured"
    # two groups: mean 0.04, t over the two values 0.02 and 0.06: s = 0.028284, half = 12.7062 * 0.02 = 0.254124
    both = verdicts.combine([E(0.02, 0.0, 0.04), E(0.06, 0.05, 0.07)])
    assert both.value == pytest.approx(0.04) and both.high == pytest.approx(0.04 + 0.254124, abs=1e-5)
    assert both.method == "t over groups" and verdicts.combine([]) is None


def row(method, seed, acc, *, modality="vision", dataset="d", backbone="b", shots=16, **extra):
    base = {"modality": modality, "dataset": dataset, "backbone": backbone, "method": method,
            "shots_per_class": shots, "seed": seed, "test_accuracy": acc, PER_ROW: {}}  # fmt: skip
    return {**base, **extra}


def _verdict(rows, which):
    """The one verdict row of claim key ``which`` (or whose claim starts with it)."""
    (found,) = [v for v in verdicts.verdict_table(rows) if v["key"] == which or v["claim"].startswith(which)]
    return found


def test_lp_ft_claim_agrees_disagrees_and_needs_same_rows():
    def grid(lp_ft_shift_gain):
        rows = []
        for seed in range(4):
            jitter = 0.005 * seed
            rows.append(row("full", seed, 0.80 + jitter, shift_mean_accuracy=0.60 + jitter, shift_same_rows=True))
            rows.append(row("lp_ft", seed, 0.81 + jitter, shift_mean_accuracy=0.61 + lp_ft_shift_gain + 2 * jitter,
                            shift_same_rows=True))  # fmt: skip
        return rows

    kumar = "Kumar et al. 2022 (LP-FT): LP-FT"
    assert _verdict(grid(0.05), kumar)["verdict"] == "agrees"  # shifted gain 0.06 + .. vs ID gain 0.01
    assert _verdict(grid(-0.05), kumar)["verdict"] == "disagrees"
    measured = _verdict(grid(0.05), kumar)["measured"]
    assert measured.startswith("+5.8 [") and "pt" in measured  # (0.06 + 0.005 * 1.5) - 0.01, in points
    other_rows = [{**r, "shift_same_rows": False} for r in grid(0.05)]  # shifted on other rows: not comparable
    missing = _verdict(other_rows, kumar)
    assert missing["verdict"] == "not measured" and "same test rows" in missing["why"]


def test_he_needs_converged_scratch_and_judges_the_shrinking_gap():
    def grid(variant, large_gap):
        rows = []
        for seed in range(3):
            for shots, size, gap in ((4, 40, 0.30), (64, 640, large_gap)):
                j = 0.01 * seed
                rows.append(row("full", seed, 0.8 + j, shots=shots, train_size=size, variant=variant))
                rows.append(row("scratch", seed, 0.8 - gap + 0.5 * j, shots=shots, train_size=size, variant=variant))
        return rows

    he = "He, Girshick"
    assert _verdict(grid("converged", 0.05), he)["verdict"] == "agrees"
    assert _verdict(grid("converged", 0.45), he)["verdict"] == "disagrees"  # the gap grew with data
    fixed = _verdict(grid("fixed_budget", 0.05), he)
    assert fixed["verdict"] == "not measured" and "fixed_budget" in fixed["why"]


def test_he_is_not_measured_when_scratch_hit_its_cap_and_says_so():
    """Early stopping was declared ('converged') but scratch stopped at the cap: capped, not converged."""
    rows = []
    for seed in range(3):
        rows.append(row("full", seed, 0.85, variant="converged", stopped="early_stopping", cap_steps=60))
        rows.append(row("scratch", seed, 0.30, variant="converged", stopped="cap" if seed else "early_stopping",
                        cap_steps=60))  # fmt: skip
    he = _verdict(rows, "He, Girshick")
    assert he["verdict"] == "not measured" and he["measured"] == "-"
    assert "scratch did not train to convergence in 2 of 3 runs (2 capped; 60-step cap): capped, not converged" in he["why"]
    assert he["why"].endswith("; and one training size (needs 2 or more)")
    # two sizes with a capped scratch: still not a verdict (the gap would measure convergence speed)
    both = rows + [{**r, "shots_per_class": 64, "train_size": 640} for r in rows]
    assert _verdict(both, "He, Girshick")["verdict"] == "not measured"
    assert effects.run_variant(rows[1]) == "converged" and effects.run_variant(rows[3]) == "capped"
    # a fixed budget (no early stopping: the default spec's scratch) is not converged either
    fixed = [{**r, "variant": "fixed_budget", "stopped": "fixed_budget"} if r["method"] == "scratch" else r for r in rows]
    assert "(3 fixed_budget; 60-step cap): capped, not converged" in _verdict(fixed, "He, Girshick")["why"]


def test_kornblith_lite2_vs_lite0_and_missing_family():
    rows = []
    for seed in range(3):
        for backbone, acc in (("zoo:efficientnet-lite0", 0.70), ("zoo:efficientnet-lite2", 0.70)):
            rows.append(row("full", seed, acc + 0.02 * seed * (backbone.endswith("2")), backbone=backbone))
    assert _verdict(rows, "kornblith_ft")["verdict"] == "inconclusive"  # +0, +2, +4 points: the interval holds 0
    lite0_only = _verdict([r for r in rows if "lite0" in r["backbone"]], "kornblith_ft")
    assert lite0_only["verdict"] == "not measured" and "needs EfficientNet-Lite0 and -Lite2 runs" in lite0_only["why"]
    # a modality without any EfficientNet-Lite candidate is not missing runs: the claim is not about its models
    text = _verdict([row("full", seed, 0.9, modality="text", backbone=b) for seed in range(3)
                     for b in ("zoo:minilm-l6", "zoo:minilm-l6@L3")], "kornblith_ft")  # fmt: skip
    assert text["verdict"] == "not measured" and "none of this grid's text candidates is one" in text["why"]


def test_kornblith_compares_the_whole_pretrained_lites_not_their_variants():
    rows = []
    for seed in range(3):  # a random-init Lite0 listed first must not stand in for Lite0
        for backbone, acc in (("zoo:efficientnet-lite0@random", 0.30), ("zoo:efficientnet-lite0", 0.80),
                              ("zoo:efficientnet-lite2@L3", 0.10), ("zoo:efficientnet-lite2", 0.70)):  # fmt: skip
            rows.append(row("linear_probe", seed, acc + 0.01 * seed, backbone=backbone))
    found = _verdict(rows, "kornblith_fixed")
    assert found["verdict"] == "disagrees" and found["measured"].startswith("-10.0")  # Lite2 - Lite0 = -10 points


def test_kornblith_fine_tuned_claim_reads_full_fine_tuning_and_the_fixed_feature_claim_the_probe():
    rows = []
    for seed in range(3):  # fine-tuned: Lite2 ahead by 3-5 points; as fixed features: behind by 5-7 points
        for method, lite0, lite2 in (("full", 0.80, 0.84 + 0.01 * (seed - 1)), ("linear_probe", 0.70, 0.64 - 0.01 * (seed - 1))):
            rows.append(row(method, seed, lite0, backbone="zoo:efficientnet-lite0"))
            rows.append(row(method, seed, lite2, backbone="zoo:efficientnet-lite2"))
    fine_tuned, fixed = _verdict(rows, "kornblith_ft"), _verdict(rows, "kornblith_fixed")
    # paired t over 3 seeds of +3, +4, +5 points: 4.0 +- 4.303 * 1/sqrt(3) = [+1.5, +6.5]
    assert fine_tuned["verdict"] == "agrees" and fine_tuned["measured"].startswith("+4.0 [+1.5, +6.5] pt (full @16")
    assert "0.96 (fine-tuned)" in fine_tuned["published"]
    assert fixed["verdict"] == "disagrees" and fixed["measured"].startswith("-6.0 [-8.5, -3.5] pt (linear_probe @16")
    probe_only = [r for r in rows if r["method"] == "linear_probe"]
    missing = _verdict(probe_only, "kornblith_ft")
    assert missing["verdict"] == "not measured" and "needs full runs of Lite0 and Lite2" in missing["why"]


def test_logme_ranks_against_fine_tuned_accuracy_and_the_probe_row_against_the_probe():
    rows = []
    full = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}  # LogME's order a > b > c > d: right when fine-tuned ...
    probe = {0: {"a": 0.60, "b": 0.70, "c": 0.80, "d": 0.90},  # ... reversed under the probe (tau -1, regret 30 pt)
             1: {"a": 0.60, "b": 0.70, "c": 0.92, "d": 0.90},  # c and d swap: regret 32 pt
             2: {"a": 0.72, "b": 0.70, "c": 0.80, "d": 0.90}}  # a and b swap at the bottom: regret 18 pt
    for seed in range(3):
        for i, backbone in enumerate("abcd"):
            acc = full[backbone] + (0.15 if (seed, backbone) == (1, "d") else 0.0)  # seed 1: d passes c
            rows.append(row("full", seed, acc, backbone=backbone, logme=4.0 - i))
            rows.append(row("linear_probe", seed, probe[seed][backbone], backbone=backbone, logme=4.0 - i))
    fine_tuned, by_probe = _verdict(rows, "logme"), _verdict(rows, "logme_probe")
    assert fine_tuned["verdict"] == "agrees" and "against full accuracy, 1 data set/size group, 4 candidates" in fine_tuned["measured"]
    assert "regret of the top pick +0.0" in fine_tuned["measured"]  # a is best fine-tuned at every seed
    assert by_probe["verdict"] == "disagrees" and "the interval lies below 0.50" in by_probe["why"]
    assert by_probe["measured"].startswith("-0.") and "against linear_probe accuracy" in by_probe["measured"]
    # the probe's regret per seed: 30, 32, 18 points -> mean 26.7, with an interval (bounded in [0, 1])
    assert "regret of the top pick +26.7 [" in by_probe["measured"]
    # without fine-tuned runs the published-protocol row is not measured (never silently the probe's)
    missing = _verdict([r for r in rows if r["method"] == "linear_probe"], "logme")
    assert missing["verdict"] == "not measured" and "needs LogME scores and full runs" in missing["why"]


def test_logme_with_the_same_tau_at_every_seed_has_no_interval_and_is_inconclusive():
    rows = []  # LogME's order a > b > c > d; fine-tuned order a > b > d > c at every seed: tau 61/75 three times
    for seed in range(3):
        for i, (backbone, acc) in enumerate({"a": 0.9, "b": 0.8, "c": 0.6, "d": 0.7}.items()):
            rows.append(row("full", seed, acc - 0.01 * seed, backbone=backbone, logme=0.1 * seed - 0.03 * i))
    logme = _verdict(rows, "logme")
    # (61/75 + 1) / 2 three times: float variance ~1e-33, not 0; a [0.81, 0.81] interval would read "above the band"
    assert logme["measured"].startswith("0.81 (no interval: 3 runs)") and logme["verdict"] == "inconclusive"
    assert logme["why"] == "no interval (3 replicates, no spread between them)"


def test_logme_band_and_biderman_sweep():
    rows = []
    accs = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}
    swaps = {0: {}, 1: {"c": 0.55}, 2: {"d": 0.72}}  # seed 1: c and d swap; seed 2: c and d swap the other way
    for seed in range(3):
        for i, backbone in enumerate("abcd"):
            acc = swaps[seed].get(backbone, accs[backbone])
            rows.append(row("full", seed, acc, backbone=backbone, logme=4.0 - i))
    logme = _verdict(rows, "logme")
    # per-seed taus: 1 and twice a bottom swap of 4 (weights 1, 1/2, 1/3, 1/4; all pairs 75/12, the swap 7/12):
    # 61/75 = 0.8133; mean 0.8756 (t: +- 0.2677 -> [0.61, 1.14], past 1). Bounded: (tau + 1) / 2 = 1, 0.906667 twice,
    # p = 0.937778, var(mean) 0.00096790, n* = 60.2857, denom 1 + q^2 / n* = 1.307085, centre 0.834927, half 0.155843
    # -> [0.679084, 0.990770] -> tau [0.36, 0.98]: overlaps the band, above 0
    assert logme["verdict"] == "agrees" and logme["measured"].startswith("0.88 [0.36, 0.98]")
    assert "regret of the top pick +0.0" in logme["measured"]  # the top candidate is right every time
    assert _verdict(rows, "Biderman")["verdict"] == "not measured"  # no learning-rate sweep

    sweep = []
    for seed in range(3):
        for lr, (lora_acc, full_acc, lora_forget, full_forget) in {1e-4: (0.70, 0.80, -0.01, -0.10),
                                                                   1e-3: (0.75, 0.85, -0.02, -0.20)}.items():  # fmt: skip
            j = 0.003 * seed
            sweep.append(row("lora", seed, lora_acc + j, learning_rate=lr, val_accuracy=lora_acc, forgetting_change=lora_forget - j))
            sweep.append(row("full", seed, full_acc + 2 * j, learning_rate=lr, val_accuracy=full_acc, forgetting_change=full_forget))
    biderman = _verdict(sweep, "Biderman")
    assert biderman["verdict"] == "agrees" and "learns -10.3 [" in biderman["measured"]  # -0.10 - 0.003 on average
    assert "forgetting change +17.7 [" in biderman["measured"]  # +0.18 - 0.003


def test_logme_is_judged_on_the_n_greater_than_d_groups_where_there_are_any():
    """Two sizes of one data set: at 16 rows per class (N <= D) LogME ranks backwards (tau -1 at every seed), at 100
    (N > D) as the seeds of test_logme_band_and_biderman_sweep (tau 0.88 [0.36, 0.98]). The verdict reads the N > D
    group only; pooled, the 6 taus would reach below 0 and read inconclusive."""
    accs = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}
    swaps = {0: {}, 1: {"c": 0.55}, 2: {"d": 0.72}}
    rows = []
    for seed in range(3):
        for i, backbone in enumerate("abcd"):
            rows.append(row("full", seed, accs[backbone], backbone=backbone, shots=16, logme=float(i), n_le_d=True))
            acc = swaps[seed].get(backbone, accs[backbone])
            rows.append(row("full", seed, acc, backbone=backbone, shots=100, logme=4.0 - i, n_le_d=False))
    logme = _verdict(rows, "logme")
    assert logme["verdict"] == "agrees" and logme["measured"].startswith("0.88 [0.36, 0.98]")
    assert "judged on the N > D group(s) only, 1 N <= D group(s) set aside" in logme["measured"]
    # without the N > D group the N <= D one is judged, and flagged
    small = _verdict([r for r in rows if r["shots_per_class"] == 16], "logme")
    assert small["measured"].startswith("-1.00 (no interval: 3 runs)") and "N <= D for a, b, c, d" in small["measured"]
    assert "set aside" not in small["measured"]


def test_logme_regret_interval_stays_inside_0_1():
    rows = []
    for seed in range(3):  # seed 2: the top-scored candidate a falls to 0.5, b (0.8) is best: regret 0.3 there
        for i, backbone in enumerate("abcd"):
            acc = {"a": 0.5 if seed == 2 else 0.9, "b": 0.8, "c": 0.7, "d": 0.6}[backbone]
            rows.append(row("full", seed, acc, backbone=backbone, logme=4.0 - i))
    measured = _verdict(rows, "logme")["measured"]
    # seed regrets 0, 0, 0.3: t gives 0.1 +- 0.430265 = [-0.330, +0.530], below 0. Bounded in [0, 1]: p 0.1,
    # var(mean) 0.03 / 3 = 0.01, n* = 0.09 / 0.01 = 9, q^2 / n* = 2.056980, denom 3.056980, centre (0.1 + 18.512822 /
    # 18) / denom = 0.369152, half 4.302653 * sqrt(0.01 + 18.512822 / 324) / denom = 0.364695 -> [0.004458, 0.733847]
    assert "regret of the top pick +10.0 [+0.4, +73.4] pt" in measured


def test_biderman_reads_the_curve_runs_not_the_reported_ones():
    """The reported runs hold each method's chosen rate only; the curve runs (spec curve_methods) hold every seed at
    every rate, the chosen one too: the verdict and the curve section read those, and never count a seed twice."""
    curve, reported = [], []
    for seed in range(3):
        j = 0.01 * seed
        for lr, (lora_acc, full_acc, lora_forget, full_forget) in {1e-4: (0.70, 0.80, -0.01, -0.05),
                                                                   1e-3: (0.74, 0.86, -0.03, -0.15)}.items():  # fmt: skip
            curve.append(row("lora", seed, lora_acc + j, learning_rate=lr, val_accuracy=lora_acc, forgetting_change=lora_forget + j))
            curve.append(row("full", seed, full_acc + j, learning_rate=lr, val_accuracy=full_acc, forgetting_change=full_forget))
        reported.append(row("lora", seed, 0.74 + j, learning_rate=1e-3, val_accuracy=0.74, forgetting_change=-0.03 + j))
        reported.append(row("full", seed, 0.86 + j, learning_rate=1e-3, val_accuracy=0.86, forgetting_change=-0.15))
        reported.append(row("linear_probe", seed, 0.60, forgetting_change=0.0))
    assert _verdict(reported, "Biderman")["verdict"] == "not measured"  # one rate per method
    (found,) = [v for v in verdicts.verdict_table(reported, curve) if v["claim"].startswith("Biderman")]
    # at the best-validation rate 1e-3 for both: learns 0.74 - 0.86 = -12 pt on every seed (no spread: a zero-width
    # interval below 0); forgetting -0.03 + j - (-0.15) = +12, +13, +14 pt
    assert found["verdict"] == "agrees", found
    assert "learns -12.0 [" in found["measured"] and "forgetting change +13.0 [" in found["measured"]
    assert "lora 0.001 vs full 0.001" in found["measured"]
    # the other claims still read the reported runs only: the curve adds no modality and no rows to them
    assert [v["modality"] for v in verdicts.verdict_table(reported, curve)] == ["vision"] * len(verdicts.CLAIMS)
    lines = findings.curve_summary(curve)
    assert len(lines) == 1 and "lora at 0.0001: accuracy 0.710 [" in lines[0]
    assert "full at 0.001 (chosen on validation): accuracy 0.870 [" in lines[0] and "forgetting change -15.0" in lines[0]
    assert findings.curve_summary(reported) == []  # one rate per method: no curve
    # a curve run repeating a reported run (same cell, rate and seed) counts once
    merged = verdicts.with_curve(reported, curve)
    assert len(merged) == len(reported) + len(curve) - 6 and merged[: len(reported)] == reported


def _band_rows(modality):
    """test_logme_band_and_biderman_sweep's candidates (two bottom swaps in 3 seeds), in one modality."""
    accs, swaps, rows = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}, {0: {}, 1: {"c": 0.55}, 2: {"d": 0.72}}, []
    for seed in range(3):
        for i, backbone in enumerate("abcd"):
            acc = swaps[seed].get(backbone, accs[backbone])
            rows.append(row("full", seed, acc, modality=modality, dataset=f"{modality}-set", backbone=backbone, logme=4.0 - i))
    return rows


def test_logme_row_per_modality_never_pools_the_candidates_of_two_modalities():
    # audio: LogME puts b above a (a top swap) at seeds 0 and 1 and is right at seed 2. A top swap of 4 costs the
    # pair weight 1 + 1/2 = 18/12 of 75/12: tau 39/75 = 0.52, twice, and 1. Bounded: (tau + 1) / 2 = 0.76, 0.76, 1;
    # p 0.84, var(mean) 0.0192 / 3 = 0.0064, n* = 0.1344 / 0.0064 = 21, q^2 / n* = 0.881563, denom 1.881563,
    # centre (0.84 + 18.512822 / 42) / denom = 0.680700, half 4.302653 * sqrt(0.0064 + 18.512822 / 1764) / denom
    # = 0.297235 -> [0.383465, 0.977935] -> tau [-0.23, 0.96]: reaches below 0, inconclusive. Regret: b (0.8) picked
    # over a (0.9) at two seeds: 10, 10, 0 pt, mean 6.7. text: the band test's 0.88 [0.36, 0.98], agrees.
    audio = []
    for seed in range(3):
        logme = {"a": 3.0, "b": 4.0, "c": 2.0, "d": 1.0} if seed < 2 else {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}
        for backbone, acc in {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}.items():
            audio.append(row("full", seed, acc, modality="audio", dataset="audio-set", backbone=backbone, logme=logme[backbone]))
    table = {(v["modality"], v["key"]): v for v in verdicts.verdict_table(_band_rows("text") + audio)}
    text, sound = table["text", "logme"], table["audio", "logme"]
    assert text["measured"].startswith("0.88 [0.36, 0.98] (against full accuracy, 1 data set/size group, 4 candidates")
    assert text["verdict"] == "agrees"
    assert sound["measured"].startswith("0.68 [-0.23, 0.96] (against full accuracy, 1 data set/size group, 4 candidates")
    assert sound["verdict"] == "inconclusive" and "regret of the top pick +6.7 [" in sound["measured"]


def test_only_the_logme_summary_line_calls_n_le_d_prior_dominated():
    rows = [{**r, "knn_transfer": r["logme"], "n_le_d": True} for r in _band_rows("text")]
    lines = findings.transferability_summary(rows)
    logme = [line for line in lines if "LogME vs full" in line]
    knn = [line for line in lines if "k-NN accuracy vs full" in line]
    assert logme and "LogME there is dominated by its prior" in logme[0]
    assert knn and "N <= D" not in knn[0] and "LogME" not in knn[0]  # the ranking table's column still flags them
