"""The study's statistics against numbers worked out by hand (t quantiles from tables: t(0.975, 2) = 4.302653)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hftl.compare import stats

T_2 = 4.302653  # Student t, 97.5% quantile, 2 degrees of freedom


def test_t_interval_over_three_seeds():
    # mean 2/3; deviations -1/6, -1/15, 7/30 -> sum of squares 0.0866667, s = sqrt(0.0866667 / 2) = 0.208167
    est = stats.t_interval([0.5, 0.6, 0.9, None])
    half = T_2 * 0.208167 / math.sqrt(3)  # 0.517114
    assert est.value == pytest.approx(2 / 3)
    assert (est.low, est.high) == (pytest.approx(2 / 3 - half, abs=1e-5), pytest.approx(2 / 3 + half, abs=1e-5))
    assert est.n == 3 and est.method == "t over seeds"
    one = stats.t_interval([0.7])
    assert one.value == 0.7 and not one.has_interval and one.text() == "0.700 (no interval: 1 run)"
    assert stats.t_interval([None]) is None


def test_wilson_interval_of_8_of_10():
    # z = 1.959964: centre (0.8 + z^2/20) / (1 + z^2/10) = 0.716739; half z sqrt(0.016 + z^2/400) / 1.384146 = 0.226577
    est = stats.wilson_interval(8, 10)
    assert est.value == 0.8 and est.method == "Wilson"
    assert est.low == pytest.approx(0.490162, abs=1e-5) and est.high == pytest.approx(0.943316, abs=1e-5)
    assert stats.wilson_interval(0, 5).low == pytest.approx(0.0, abs=1e-12)  # never below 0, unlike the normal one
    with pytest.raises(ValueError, match="11/10"):
        stats.wilson_interval(11, 10)


def test_proportion_interval_is_wilson_at_the_effective_n():
    # p = 2/3, s^2 = 0.0433333, var(mean) = s^2 / 3 = 0.0144444, n* = p(1-p) / var(mean) = (2/9) / 0.0144444 = 15.3846
    # q = T_2: q^2 / n* = 1.203326, denom 2.203326; centre (2/3 + q^2 / 2n*) / denom = 0.575644
    # half q sqrt(p(1-p)/n* + q^2/(4 n*^2)) / denom = 4.302653 * sqrt(0.0144444 + 0.0195543) / 2.203326 = 0.360066
    est = stats.proportion_interval([0.5, 0.6, 0.9, None])
    assert est.value == pytest.approx(2 / 3) and est.n == 3 and est.method == stats.EFFECTIVE_WILSON
    assert est.low == pytest.approx(0.215578, abs=1e-5) and est.high == pytest.approx(0.935710, abs=1e-5)
    assert stats.t_interval([0.5, 0.6, 0.9]).high == pytest.approx(1.183781, abs=1e-5)  # what it replaces: past 1


def test_proportion_interval_where_t_overflows_1():
    # the default study's audio LoRA cell: 266/270, 270/270, 269/270 -> p = 805/810 = 0.993827
    # deviations -0.008642, +0.006173, +0.002469: s^2 = 5.94422e-5, var(mean) = 1.98141e-5
    # n* = 0.993827 * 0.006173 / 1.98141e-5 = 309.615; q^2 / n* = 0.059793, denom 1.059793
    # centre (0.993827 + 0.029896) / 1.059793 = 0.965966; half 4.302653 * sqrt(1.98141e-5 + 4.82800e-5) / 1.059793
    # = 0.033502 -> [0.932464, 0.999468]; the t interval: 0.993827 +- 4.302653 * sqrt(1.98141e-5) = [0.974675, 1.012980]
    seeds = [266 / 270, 270 / 270, 269 / 270]
    assert stats.t_interval(seeds).high > 1.0
    est = stats.proportion_interval(seeds, pooled_rows=810)  # pooled rows unused: the seeds do spread
    assert est.value == pytest.approx(805 / 810)
    assert est.low == pytest.approx(0.932464, abs=2e-6) and est.high == pytest.approx(0.999468, abs=2e-6)
    assert est.text() == "0.994 [0.932, 0.999]"


def test_proportion_interval_of_seeds_that_all_score_1():
    # zero spread: n* = the pooled rows, 3 x 270 = 810: [810 / (810 + q^2), 1] = [810 / 828.512822, 1] = [0.977656, 1]
    est = stats.proportion_interval([1.0, 1.0, 1.0], pooled_rows=810)
    assert est.value == 1.0 and est.high == 1.0 and est.low == pytest.approx(0.977656, abs=1e-6)
    assert stats.t_interval([1.0, 1.0, 1.0]).low == 1.0  # what it replaces: a point
    zero = stats.proportion_interval([0.0, 0.0], pooled_rows=40)  # q = t(0.975, 1) = 12.706205: [0, q^2 / (40 + q^2)]
    assert zero.low == 0.0 and zero.high == pytest.approx(161.447643 / 201.447643, abs=1e-6)
    unknown = stats.proportion_interval([1.0, 1.0, 1.0])  # no row counts: no interval rather than [1, 1]
    assert not unknown.has_interval and unknown.text() == "1.000 (no interval: 3 runs)"


def test_intervals_of_perfect_seeds_end_exactly_at_1():
    # 5 seeds x 270 rows, all right: centre + half rounds to 0.9999999999999998 < p = 1 (the default study's
    # audio LP-FT cell), which matplotlib refused as a negative error bar and the report died on
    est = stats.proportion_interval([1.0] * 5, pooled_rows=1350)
    assert est.value == 1.0 and est.high == 1.0 and est.low == pytest.approx(0.994322, abs=1e-6)
    for correct, n in ((270, 270), (1350, 1350), (0, 7)):
        wilson = stats.wilson_interval(correct, n)
        assert 0.0 <= wilson.low <= wilson.value <= wilson.high <= 1.0


def test_proportion_interval_agrees_with_t_when_the_seeds_scatter_little():
    seeds = [0.80, 0.81, 0.79, 0.805, 0.795]  # n* = 0.16 / (6.25e-5 / 5) = 12800: t's half-width, centre p
    t, est = stats.t_interval(seeds), stats.proportion_interval(seeds)
    assert est.low == pytest.approx(t.low, abs=5e-4) and est.high == pytest.approx(t.high, abs=5e-4)
    assert stats.proportion_interval([0.7]).text() == "0.700 (no interval: 1 run)"
    with pytest.raises(ValueError, match="1.2"):
        stats.proportion_interval([0.9, 1.2])


def test_bounded_interval_keeps_tau_inside_minus_1_1():
    # the backbone ranking's LogME taus run past 1 with t; on (tau + 1) / 2 = 0.6, 0.95, 0.9: p = 0.816667,
    # s^2 = 0.0358333, var(mean) 0.0119444, n* = 0.816667 * 0.183333 / 0.0119444 = 12.534884; q^2 / n* = 1.476904,
    # denom 2.476904; centre (0.816667 + 0.738452) / 2.476904 = 0.627848; half 4.302653 * sqrt(0.0119444 + 0.0294559)
    # / 2.476904 = 0.353451 -> [0.274397, 0.981299] on (0, 1) -> tau [-0.451206, 0.962597]
    taus = [0.2, 0.9, 0.8, float("nan")]  # nan: a seed whose scores all tied, skipped
    assert stats.t_interval(taus[:3]).high > 1.0
    est = stats.bounded_interval(taus, -1.0, 1.0)
    assert est.value == pytest.approx(19 / 30) and est.n == 3
    assert est.low == pytest.approx(-0.451206, abs=1e-5) and est.high == pytest.approx(0.962597, abs=1e-5)
    with pytest.raises(ValueError, match="1.5"):
        stats.bounded_interval([0.5, 1.5], -1.0, 1.0)


def test_log_t_interval_is_the_geometric_mean_with_t_on_log_values():
    # log10 of 1, 10, 100 = 0, 1, 2: mean 1, s 1, half t(0.975, 2) / sqrt(3) = 4.302653 / 1.732051 = 2.484138 (in
    # decades) -> 10 [10^-1.484138, 10^3.484138] = 10 [0.032799, 3048.86]; the t interval of the values: 37 +- 134
    est = stats.log_t_interval([1.0, 10.0, None, 100.0])
    assert est.method == stats.GEOMETRIC_T and est.n == 3 and est.value == pytest.approx(10.0)
    assert est.low == pytest.approx(0.032799, rel=1e-4) and est.high == pytest.approx(3048.86, rel=1e-4)
    assert stats.t_interval([1.0, 10.0, 100.0]).low < 0 < est.low  # seconds cannot be negative; mean +- t says they can
    one = stats.log_t_interval([42.0])
    assert one.value == pytest.approx(42.0) and not one.has_interval and one.method == "none"
    assert stats.log_t_interval([None]) is None
    with pytest.raises(ValueError, match="values > 0"):
        stats.log_t_interval([3.0, 0.0])


def test_paired_difference_uses_only_shared_seeds():
    a = {0: 0.8, 1: 0.7, 2: 0.9}
    b = {0: 0.6, 1: 0.6, 2: 0.7, 3: 0.5}  # seed 3 has no partner: left out
    # differences 0.2, 0.1, 0.2: mean 1/6, s = sqrt(0.0066667 / 2) = 0.057735, half = T_2 * s / sqrt(3) = 0.143422
    est = stats.paired_difference(a, b)
    assert est.value == pytest.approx(1 / 6) and est.n == 3 and est.method == "paired t over seeds"
    assert est.low == pytest.approx(1 / 6 - 0.143422, abs=1e-5) and est.high == pytest.approx(1 / 6 + 0.143422, abs=1e-5)
    assert est.excludes_zero() == 1
    assert stats.paired_difference({0: 0.5}, {1: 0.5}) is None


def test_welch_difference_matches_the_formula():
    # a = 1, 2, 3 (var 1), b = 4, 6 (var 2): se = sqrt(1/3 + 2/2) = 1.154701, df = (4/3)^2 / ((1/3)^2/2 + 1) = 1.684211
    from scipy.stats import t

    est = stats.welch_difference([1, 2, 3], [4, 6])
    half = t.ppf(0.975, 1.684211) * 1.154701
    assert est.value == pytest.approx(-3.0) and est.low == pytest.approx(-3 - half, rel=1e-5)
    assert est.excludes_zero() == 0 and est.method == "Welch"


def test_mcnemar_counts_only_discordant_rows():
    a = [1, 1, 1, 1, 1, 0, 1, 1]
    b = [0, 0, 0, 0, 0, 0, 1, 1]  # a alone right on 5 rows, b alone on none: p = 2 * 0.5^5
    assert stats.mcnemar_p(a, b) == pytest.approx(0.0625)
    assert stats.mcnemar_p(a, a) == 1.0
    assert stats.mcnemar_p([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(1.0)  # 2 vs 2: no evidence


def test_paired_bootstrap_over_rows():
    a = [1] * 15 + [0] * 5
    b = [1] * 5 + [0] * 15  # a - b per row: 10 rows +1, 10 rows 0 -> mean 0.5, se sqrt(0.25/20) = 0.1118
    est = stats.paired_rows(a, b)
    assert est.value == pytest.approx(0.5) and est.n == 20 and est.method == "paired bootstrap"
    assert est.low == pytest.approx(0.5 - 1.96 * 0.1118, abs=0.05) and est.high == pytest.approx(0.5 + 1.96 * 0.1118, abs=0.05)
    assert stats.paired_rows(a, b) == est  # a fixed seed: the same report every time
    with pytest.raises(ValueError, match="20 vs 3"):
        stats.paired_rows(a, [1, 0, 1])


def test_chance_normalised_accuracy():
    assert stats.chance_normalised(0.55, 10) == pytest.approx(0.5)  # (0.55 - 0.1) / 0.9
    assert stats.chance_normalised(0.5, 2) == 0.0 and stats.chance_normalised(1.0, 4) == 1.0
    est = stats.normalised_estimate(stats.Estimate(0.55, 0.46, 0.64, 3, "t over seeds"), 10)
    assert (est.value, est.low, est.high) == (pytest.approx(0.5), pytest.approx(0.4), pytest.approx(0.6))
    with pytest.raises(ValueError):
        stats.chance_normalised(0.5, 1)


def test_estimate_text_in_points():
    est = stats.Estimate(0.021, 0.004, 0.038, 5, "paired t over seeds")
    assert est.text(digits=1, scale=100, sign=True) == "+2.1 [+0.4, +3.8]"
    assert np.isclose(est.scaled(100).value, 2.1)
