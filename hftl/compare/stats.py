"""The study's statistics: intervals, paired differences and the tests behind the report's numbers.

Which interval where (the report names it beside each number):
    t over seeds         a cell's mean over its seeds (each seed redraws the training subset and the initialisation):
                         mean +- t(0.975, n-1) * s / sqrt(n); the seed-to-seed spread is the one that matters for a
                         user who reruns the study. Used for unbounded measures (scores, changes, differences).
    geometric, log t     a positive cost over seeds (training seconds): its geometric mean exp(mean log v) with the
                         t interval of the log values, mapped back, so it never reaches 0 or below (a mean +- t of
                         3 skewed timings does) and a run twice as slow counts as much as one twice as fast.
    Wilson, effective n  the same seed-to-seed spread for a mean of values in [0, 1] (accuracy, F1, an error rate):
                         a Wilson interval at the effective sample size, so it never passes 0 or 1
                         (proportion_interval says why this one); bounded_interval for other bounds (tau: [-1, 1]).
    Wilson               one run's accuracy on its n test rows (a binomial proportion): used where a cell has one seed.
    paired t over seeds  a difference between two methods (or before/after) measured on the SAME seeds, i.e. the same
                         training subsets: the mean of the per-seed differences +- t * s_d / sqrt(n).
    paired bootstrap     one pair of runs with per-row correctness on the same test rows: the rows are resampled
                         (percentile interval of the mean per-row difference); McNemar's exact test gives its p-value.
    Welch                two means from independent seeds (e.g. a gap at 4 rows per class vs at 64: different subsets).
Every interval is two-sided 95%. An interval is None where it cannot be had (one value, no per-row data): the report
then prints the estimate with "(no interval: 1 run)", never a made-up spread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
BOOTSTRAP_SAMPLES = 2000
EFFECTIVE_WILSON = "Wilson, effective n over seeds"
GEOMETRIC_T = "geometric mean, t on log values"


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% interval (low/high None: no interval could be had) and how the interval was made."""

    value: float
    low: float | None
    high: float | None
    n: int  # the replicates behind it: seeds, seed pairs, or test rows
    method: str  # "t over seeds", EFFECTIVE_WILSON, GEOMETRIC_T, "Wilson", "paired t over seeds", "paired bootstrap",
    #              "Welch", "none"

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def excludes_zero(self) -> int:
        """+1: the interval lies above 0; -1: below 0; 0: it holds 0 (or there is no interval)."""
        if not self.has_interval:
            return 0
        return 1 if self.low > 0 else -1 if self.high < 0 else 0

    def scaled(self, factor: float, offset: float = 0.0) -> Estimate:
        """The estimate under x -> factor * x + offset (factor > 0), e.g. chance normalisation or points."""
        move = lambda v: None if v is None else factor * v + offset  # noqa: E731
        return Estimate(move(self.value), move(self.low), move(self.high), self.n, self.method)

    def text(self, digits: int = 3, scale: float = 1.0, sign: bool = False) -> str:
        """'0.812 [0.790, 0.834]' (sign: '+2.1 [+0.4, +3.8]'); '0.812 (no interval: 1 run)'."""
        fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
        head = fmt.format(scale * self.value)
        if not self.has_interval:
            return f"{head} (no interval: {self.n} {'run' if self.n == 1 else 'runs'})"
        return f"{head} [{fmt.format(scale * self.low)}, {fmt.format(scale * self.high)}]"


def _t_quantile(df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + LEVEL / 2, df))


def t_interval(values: Iterable[float | None], method: str = "t over seeds") -> Estimate | None:
    """Mean and Student-t interval of the values present (None are skipped); no interval below 2 values."""
    present = np.asarray([float(v) for v in values if v is not None], dtype=np.float64)
    if len(present) == 0:
        return None
    mean = float(present.mean())
    if len(present) < 2:
        return Estimate(mean, None, None, 1, "none")
    half = _t_quantile(len(present) - 1) * float(present.std(ddof=1)) / math.sqrt(len(present))
    return Estimate(mean, mean - half, mean + half, len(present), method)


def log_t_interval(values: Iterable[float | None]) -> Estimate | None:
    """Geometric mean of positive values (None skipped) with the t interval of their logs, mapped back by exp:
    exp(m +- t(0.975, n-1) * s / sqrt(n)), m and s the mean and standard deviation of log v. Inside (0, inf) and
    asymmetric like the values' spread (module docstring: geometric, log t); no interval below 2 values."""
    present = np.asarray([float(v) for v in values if v is not None], dtype=np.float64)
    if len(present) == 0:
        return None
    if np.any(present <= 0):
        raise ValueError(f"log_t_interval needs values > 0, got {present.tolist()}")
    logs = t_interval(np.log(present))
    low, high = (None, None) if not logs.has_interval else (math.exp(logs.low), math.exp(logs.high))
    return Estimate(math.exp(logs.value), low, high, logs.n, GEOMETRIC_T if logs.has_interval else "none")


def wilson_interval(correct: int, n: int) -> Estimate:
    """Wilson score interval of a proportion correct/n (better than the normal one near 0 or 1 and at small n).

    centre = (p + z^2/2n) / (1 + z^2/n),  half = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n); the estimate stays p.
    """
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"Wilson interval needs 0 <= correct <= n and n > 0, got {correct}/{n}")
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + LEVEL / 2))
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Estimate(p, *_around(p, centre - half, centre + half), n, "Wilson")


def _around(p: float, low: float, high: float) -> tuple[float, float]:
    """A Wilson interval's ends, inside [0, 1] and around p, as they are exactly: rounding can put them past 1 or,
    at p = 1, a hair below p (0.9999999999999998), which a plot reads as a negative error bar."""
    return max(0.0, min(p, low)), min(1.0, max(p, high))


def proportion_interval(values: Iterable[float | None], pooled_rows: int | None = None) -> Estimate | None:
    """Mean over seeds of values in [0, 1] (accuracy, macro F1, an error rate) with a 95% interval inside [0, 1].

    Why this interval: it is the Wilson score interval at the effective sample size n* = p(1-p) / var(mean), with
    var(mean) = s^2 / k from the k seeds, and the degrees-of-freedom correction of Korn & Graubard (1998): the normal
    quantile becomes t(0.975, k-1), as in the t interval. (The survey-statistics treatment of a proportion whose
    variance comes from replicates, not from counting rows; Dean & Pagano 2015 compare such intervals for clustered
    data.)
      - where the seeds scatter little against p(1-p) (n* large, most cells) it is the t interval over seeds:
        centre p, half-width t * s / sqrt(k), so ordinary cells keep the spread the report always showed; where
        they scatter widely (n* of tens) it takes the binomial shape: narrower than t near 0.5 (0.36, 0.56, 0.58
        gives [0.24, 0.76], t: [0.20, 0.80]), longer on the side away from the nearer bound;
      - near 0 or 1 it bends inwards instead of passing the bound (0.985, 1.0, 0.996 gives [0.932, 0.999], not
        [0.975, 1.013]); the t interval on the logit scale cannot take a seed at exactly 1.0, and a bootstrap over
        3 seeds has 10 distinct resamples and returns [1, 1] for three perfect seeds.
      - zero spread (every seed the same value, e.g. three seeds at 1.0): the seeds say nothing about the
        uncertainty, so n* becomes pooled_rows, the test rows scored over all seeds (the rows are the only other
        count there is): three perfect seeds on 270 rows each give [810 / (810 + t^2), 1] = [0.978, 1], never [1, 1].
        The seeds share their test rows, so 810 counts scored predictions, not distinct rows (270 would give
        [0.936, 1]); with t(0.975, k-1) the interval still carries how few seeds there were.
        Without pooled_rows such a cell gets no interval ("no interval"), not a made-up one.
    One value: no interval (aggregate gives a single seed's accuracy Wilson's interval on its own rows).
    """
    present = np.asarray([float(v) for v in values if v is not None], dtype=np.float64)
    if len(present) == 0:
        return None
    if np.any((present < 0) | (present > 1)):
        raise ValueError(f"proportion_interval needs values in [0, 1], got {present.tolist()}")
    p, k = float(present.mean()), len(present)
    if k < 2:
        return Estimate(p, None, None, 1, "none")
    # equal values are zero spread exactly (their float variance can come out 1e-33, which would be a [v, v] interval)
    var_mean = float(present.var(ddof=1)) / k if np.ptp(present) > 0 else 0.0
    if var_mean > 0:
        n_eff = p * (1 - p) / var_mean
    elif pooled_rows:
        n_eff = float(pooled_rows)
    else:
        return Estimate(p, None, None, k, "none")
    q = _t_quantile(k - 1)
    denom = 1 + q * q / n_eff
    centre = (p + q * q / (2 * n_eff)) / denom
    half = q * math.sqrt(p * (1 - p) / n_eff + q * q / (4 * n_eff * n_eff)) / denom
    return Estimate(p, *_around(p, centre - half, centre + half), k, EFFECTIVE_WILSON)


def bounded_interval(values: Iterable[float | None], low: float, high: float) -> Estimate | None:
    """Mean over seeds of values bounded in [low, high] (Kendall's tau: [-1, 1]) with a 95% interval inside them:
    proportion_interval of (v - low) / (high - low), mapped back. For tau the variance shape p(1-p) becomes
    (1 - tau^2) / 4, the shape of tau's own sampling variance near +-1. No rows to fall back on: zero spread gives
    no interval. NaN (a tau left undefined because every score tied) is skipped like None."""
    present = [float(v) for v in values if v is not None and not math.isnan(v)]
    if any(not low <= v <= high for v in present):
        raise ValueError(f"bounded_interval needs values in [{low}, {high}], got {present}")
    estimate = proportion_interval((v - low) / (high - low) for v in present)
    return None if estimate is None else estimate.scaled(high - low, low)


def welch_difference(a: Sequence[float], b: Sequence[float]) -> Estimate | None:
    """mean(a) - mean(b) for two INDEPENDENT samples, Welch's interval (Welch-Satterthwaite degrees of freedom)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return None
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Estimate(diff, None, None, min(len(a), len(b)), "none")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Estimate(diff, diff, diff, len(a) + len(b), "Welch")
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    from scipy.stats import t

    half = float(t.ppf(0.5 + LEVEL / 2, df)) * se
    return Estimate(diff, diff - half, diff + half, len(a) + len(b), "Welch")


def paired_by_key(a: Mapping, b: Mapping) -> list[tuple[float, float]]:
    """(a[k], b[k]) for the keys (seeds) both have a value for, in sorted key order."""
    return [(float(a[k]), float(b[k])) for k in sorted(set(a) & set(b), key=str)
            if a[k] is not None and b[k] is not None]  # fmt: skip


def paired_difference(a: Mapping, b: Mapping) -> Estimate | None:
    """mean over shared seeds of (a - b), with the paired t interval; None when no seed has both."""
    pairs = paired_by_key(a, b)
    return t_interval((x - y for x, y in pairs), method="paired t over seeds") if pairs else None


def bootstrap_mean(per_row: Sequence[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> Estimate | None:
    """Mean of per-row values (e.g. per-row differences of two runs on the same rows) and its percentile bootstrap
    interval (rows resampled with replacement; a fixed seed, so the report is reproducible)."""
    values = np.asarray(per_row, dtype=np.float64)
    if len(values) == 0:
        return None
    if len(values) < 2:
        return Estimate(float(values.mean()), None, None, 1, "none")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return Estimate(float(values.mean()), float(low), float(high), len(values), "paired bootstrap")


def paired_rows(correct_a: Sequence[int], correct_b: Sequence[int]) -> Estimate | None:
    """Accuracy of a minus accuracy of b on the same rows (per-row correctness, same order): paired bootstrap."""
    if len(correct_a) != len(correct_b):
        raise ValueError(f"paired rows need the same rows: {len(correct_a)} vs {len(correct_b)}")
    return bootstrap_mean(np.asarray(correct_a, dtype=np.float64) - np.asarray(correct_b, dtype=np.float64))


def mcnemar_p(correct_a: Sequence[int], correct_b: Sequence[int]) -> float:
    """Exact two-sided McNemar p-value: of the rows exactly one run got right (b01 + b10), is the split 50/50?"""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"McNemar needs the same rows: {a.shape} vs {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def chance_normalised(accuracy: float, classes: int) -> float:
    """(acc - 1/K) / (1 - 1/K): 0 at chance, 1 at perfect; comparable across data sets with different K."""
    if classes < 2:
        raise ValueError(f"chance normalisation needs at least 2 classes, got {classes}")
    chance = 1.0 / classes
    return (accuracy - chance) / (1.0 - chance)


def normalised_estimate(estimate: Estimate, classes: int) -> Estimate:
    """An accuracy estimate (with its interval) chance-normalised: the map is linear, so the interval maps too."""
    chance = 1.0 / classes
    return estimate.scaled(1.0 / (1.0 - chance), -chance / (1.0 - chance))
