"""Linear CKA (Kornblith et al., ICML 2019, "Similarity of Neural Network Representations Revisited"), biased and debiased.

Biased: CKA(X, Y) = |Y^T X|_F^2 / (|X^T X|_F |Y^T Y|_F) on column-centred X (n x p) and Y (n x q): 1 for the same
representation up to rotation and isotropic scaling. Computed in feature space (p x q products). With few rows
relative to the feature dimensions it has a positive floor: two INDEPENDENT 384-d representations on 150 rows score
about 0.15 when their variance falls as 1/j over the dimensions (a typical learned spectrum), about d / (n + d) = 0.72
when isotropic.

Debiased: the same ratio with HSIC replaced by its unbiased estimator (Song et al. 2012; used for CKA by Nguyen,
Raghu & Kornblith 2021, "Do Wide and Deep Networks Learn the Same Things?"). On the linear Gram matrices K = XX^T and
L = YY^T with zeroed diagonals (K~, L~):
    HSIC_1(K, L) = [tr(K~ L~) + 1^T K~ 1 * 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) * 1^T K~ L~ 1] / (n(n-3))
    CKA_debiased = HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L))
about 0 for independent representations whatever n and d (it can go slightly negative), 1 for identical ones.
Needs n >= 4 rows; costs n x n Gram matrices (fine for probe sets of hundreds to a few thousand rows).
"""

from __future__ import annotations

import numpy as np


def _check(x: np.ndarray, y: np.ndarray, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"expected two (n, d) arrays with the same n, got {x.shape} and {y.shape}")
    if len(x) < min_rows:
        raise ValueError(f"CKA needs at least {min_rows} samples, got {len(x)}")
    return x - x.mean(axis=0), y - y.mean(axis=0)


def linear_cka(x: np.ndarray, y: np.ndarray, debiased: bool = False) -> float:
    """Linear CKA between two representations of the same n samples (rows); debiased: the unbiased-HSIC estimator.

    Raises:
        ValueError: different row counts, too few rows (2; debiased 4), or a constant representation (undefined).
    """
    if debiased:
        return _debiased_linear_cka(x, y)
    x, y = _check(x, y, 2)
    cross = np.linalg.norm(y.T @ x) ** 2
    norm_x = np.linalg.norm(x.T @ x)
    norm_y = np.linalg.norm(y.T @ y)
    if norm_x == 0 or norm_y == 0:
        raise ValueError("CKA is undefined for a constant representation (all rows equal)")
    return float(cross / (norm_x * norm_y))


def unbiased_hsic(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 (the literature's name)
    """HSIC_1 of two n x n Gram matrices (the formula in the module docstring)."""
    n = len(k)
    k = k.copy()
    l = l.copy()  # noqa: E741
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    ones_k, ones_l = k.sum(axis=0), l.sum(axis=0)  # 1^T K~ and 1^T L~ (symmetric)
    trace = float((k * l).sum())  # tr(K~ L~) for symmetric matrices
    middle = float(ones_k.sum() * ones_l.sum()) / ((n - 1) * (n - 2))
    last = 2.0 / (n - 2) * float(ones_k @ ones_l)  # 1^T K~ L~ 1
    return (trace + middle - last) / (n * (n - 3))


def _debiased_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    x, y = _check(x, y, 4)
    k, l = x @ x.T, y @ y.T  # noqa: E741
    xx, yy = unbiased_hsic(k, k), unbiased_hsic(l, l)
    if xx <= 0 or yy <= 0:
        raise ValueError("debiased CKA is undefined for a constant (or rank-degenerate) representation")
    return float(unbiased_hsic(k, l) / np.sqrt(xx * yy))
