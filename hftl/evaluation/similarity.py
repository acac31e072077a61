"""Linear CKA (Kornblith et al., ICML 2019, "Similarity of Neural Network Representations Revisited").

CKA(X, Y) = |Y^T X|_F^2 / (|X^T X|_F |Y^T Y|_F) on column-centred X (n x p) and Y (n x q): 1 for the same
representation up to rotation and isotropic scaling, near 0 for unrelated ones. Computed in feature space
(p x q products), which is cheap for the n >> p probe sets used here.
"""

from __future__ import annotations

import numpy as np


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between two representations of the same n samples (rows).

    Raises:
        ValueError: different row counts, fewer than 2 rows, or a constant representation (CKA is undefined).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"expected two (n, d) arrays with the same n, got {x.shape} and {y.shape}")
    if len(x) < 2:
        raise ValueError("CKA needs at least 2 samples")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    norm_x = np.linalg.norm(x.T @ x)
    norm_y = np.linalg.norm(y.T @ y)
    if norm_x == 0 or norm_y == 0:
        raise ValueError("CKA is undefined for a constant representation (all rows equal)")
    return float(cross / (norm_x * norm_y))
