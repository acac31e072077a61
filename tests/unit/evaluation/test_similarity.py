"""Linear CKA, biased and debiased: the floor of the biased estimator at few rows, and the debiased one's zero."""

from __future__ import annotations

import numpy as np
import pytest

from hftl.evaluation.similarity import linear_cka, unbiased_hsic


def _u_centred(gram: np.ndarray) -> np.ndarray:
    """Szekely & Rizzo's U-centring (Kornblith's center_gram(unbiased=True)): another route to the same estimator."""
    n = len(gram)
    g = gram.copy()
    np.fill_diagonal(g, 0.0)
    means = g.sum(axis=0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    g -= means[:, None] + means[None, :]
    np.fill_diagonal(g, 0.0)
    return g


def test_independent_representations_biased_floor_and_debiased_zero():
    rng = np.random.default_rng(0)
    # Feature variance falling as 1/j (a typical spectrum of learned features): the published "about 0.15" floor.
    spectrum = 1.0 / np.sqrt(np.arange(1, 385))
    x, y = rng.normal(size=(150, 384)) * spectrum, rng.normal(size=(150, 384)) * spectrum
    assert 0.12 < linear_cka(x, y) < 0.18
    assert abs(linear_cka(x, y, debiased=True)) < 0.02
    # Isotropic features: the floor is far worse, about d / (n + d) = 384 / 534 = 0.72; debiased stays at 0.
    x, y = rng.normal(size=(150, 384)), rng.normal(size=(150, 384))
    assert linear_cka(x, y) == pytest.approx(384 / 534, abs=0.03)
    assert abs(linear_cka(x, y, debiased=True)) < 0.02
    assert linear_cka(x, x) == pytest.approx(1.0) and linear_cka(x, x, debiased=True) == pytest.approx(1.0)


def test_debiased_equals_the_u_centred_form_and_is_rotation_invariant():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 8))
    y = x @ rng.normal(size=(8, 5)) + 0.5 * rng.normal(size=(40, 5))
    kx, ky = (x - x.mean(0)) @ (x - x.mean(0)).T, (y - y.mean(0)) @ (y - y.mean(0)).T
    ux, uy = _u_centred(kx), _u_centred(ky)
    expected = (ux * uy).sum() / np.sqrt((ux * ux).sum() * (uy * uy).sum())
    assert linear_cka(x, y, debiased=True) == pytest.approx(expected, rel=1e-9)
    assert unbiased_hsic(kx, ky) == pytest.approx((ux * uy).sum() / (40 * 37), rel=1e-9)
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert linear_cka(x @ rotation * 3.0, y, debiased=True) == pytest.approx(linear_cka(x, y, debiased=True))


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="at least 4"):
        linear_cka(np.ones((3, 2)), np.ones((3, 2)), debiased=True)
    with pytest.raises(ValueError, match="constant"):
        linear_cka(np.ones((6, 2)), np.arange(12.0).reshape(6, 2), debiased=True)
    with pytest.raises(ValueError, match="same n"):
        linear_cka(np.ones((6, 2)), np.ones((5, 2)))
