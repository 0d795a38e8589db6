"""Two-sample drift tests with numpy and scipy (alibi-detect and frouros cannot live beside
numpy 2): the tests "Failing Loudly" (Rabanser et al., NeurIPS 2019) found most reliable on a
classifier's outputs and on low-dimensional summaries of its inputs.

- :func:`mmd_test`: maximum mean discrepancy with a Gaussian kernel (median-distance
  bandwidth) and a permutation p-value;
- :func:`ks_test`: a Kolmogorov-Smirnov test per feature, Bonferroni-corrected;
- :func:`chi2_test`: the class mix (counts of predicted classes), chi-square.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def mmd_test(
    reference: np.ndarray, current: np.ndarray, permutations: int = 500, seed: int = 0
) -> dict:
    """Unbiased MMD^2 between two samples (n, d) and (m, d), with its permutation p-value."""
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(current, dtype=np.float64)
    scale = np.concatenate([x, y]).std(0)
    scale[scale == 0] = 1.0
    pooled = np.concatenate([x, y]) / scale
    distances = _sq_distances(pooled, pooled)
    off = distances[~np.eye(len(pooled), dtype=bool)]
    bandwidth = float(np.median(off)) or 1.0
    kernel = np.exp(-distances / bandwidth)
    n = len(x)

    def statistic(order: np.ndarray) -> float:
        k = kernel[np.ix_(order, order)]
        kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
        m = len(order) - n
        return float(
            (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
            + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2.0 * kxy.mean()
        )

    identity = np.arange(len(pooled))
    observed = statistic(identity)
    rng = np.random.default_rng(seed)
    exceed = sum(statistic(rng.permutation(identity)) >= observed for _ in range(permutations))
    return {"mmd2": observed, "p_value": (exceed + 1) / (permutations + 1)}


def ks_test(reference: np.ndarray, current: np.ndarray, alpha: float = 0.05) -> dict:
    """Per-feature two-sample KS tests; drift when any p-value is under alpha / features."""
    x, y = np.atleast_2d(reference), np.atleast_2d(current)
    results = [stats.ks_2samp(x[:, j], y[:, j]) for j in range(x.shape[1])]
    p_values = [float(r.pvalue) for r in results]
    threshold = alpha / max(1, len(p_values))
    return {
        "statistics": [float(r.statistic) for r in results],
        "p_values": p_values,
        "threshold": threshold,
        "drift": bool(min(p_values) < threshold) if p_values else False,
    }


def chi2_test(reference: np.ndarray, current: np.ndarray, classes: int) -> dict:
    """Whether the mix of predicted classes changed (chi-square on the two count vectors)."""
    a = np.bincount(np.asarray(reference, dtype=int), minlength=classes)
    b = np.bincount(np.asarray(current, dtype=int), minlength=classes)
    seen = (a + b) > 0
    if seen.sum() < 2:
        return {"reference": a.tolist(), "current": b.tolist(), "p_value": 1.0}
    _, p_value, _, _ = stats.chi2_contingency(np.stack([a[seen], b[seen]]))
    return {"reference": a.tolist(), "current": b.tolist(), "p_value": float(p_value)}
