"""Divergences between two discrete distributions, and the KS critical value.

Formulas and sources are collected in docs/STATISTICS.md.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def smooth(shares: np.ndarray, eps: float) -> np.ndarray:
    """Floor every share at ``eps`` and renormalize to sum 1 (empty-bin smoothing)."""
    s = np.maximum(np.asarray(shares, dtype=np.float64), eps)
    return s / s.sum()


def psi(ref_shares: np.ndarray, cur_shares: np.ndarray, eps: float) -> float:
    """Population Stability Index, Σ (q_i − p_i)·ln(q_i / p_i), on smoothed shares.

    p = reference shares, q = current shares; ≥ 0, 0 iff equal. Siddiqi (2006),
    *Credit Risk Scorecards*; Yurdakul (2018), *Statistical properties of the
    population stability index*. Smoothing floors shares at ``eps`` so an empty bin
    gives a large but finite contribution.
    """
    p, q = smooth(ref_shares, eps), smooth(cur_shares, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def psi_contributions(ref_shares: np.ndarray, cur_shares: np.ndarray, eps: float) -> np.ndarray:
    """Per-bin terms of :func:`psi` (for evidence: which bins moved)."""
    p, q = smooth(ref_shares, eps), smooth(cur_shares, eps)
    out: np.ndarray = (q - p) * np.log(q / p)
    return out


def js_distance(ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    """Jensen–Shannon distance, base 2: sqrt(½·KL(p‖m) + ½·KL(q‖m)), m = (p+q)/2.

    In [0, 1]; 0 iff equal, 1 iff disjoint supports. Needs no smoothing (m > 0
    wherever p or q is). Lin (1991), *Divergence measures based on the Shannon
    entropy*; the square root is a metric (Endres & Schindelin 2003).
    """
    p = np.asarray(ref_shares, dtype=np.float64)
    q = np.asarray(cur_shares, dtype=np.float64)
    sp, sq = p.sum(), q.sum()
    if sp <= 0 or sq <= 0:
        return 0.0 if sp == sq else 1.0
    p, q = p / sp, q / sq
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(p / m), 0.0)
        kq = np.where(q > 0, q * np.log2(q / m), 0.0)
    jsd = 0.5 * float(kp.sum() + kq.sum())
    return float(min(1.0, math.sqrt(max(jsd, 0.0))))


def ks_critical_value(n: int, m: int, alpha: float) -> float:
    """Two-sample KS critical distance at level α (asymptotic, Smirnov 1948):
    c(α)·sqrt((n+m)/(n·m)) with c(α) = sqrt(−ln(α/2)/2). ``inf`` if a side is empty."""
    if n <= 0 or m <= 0:
        return math.inf
    c = math.sqrt(-math.log(alpha / 2.0) / 2.0)
    return c * math.sqrt((n + m) / (n * m))


def ks_pvalue(d: float, error_bound: float, n: int, m: int) -> float:
    """Asymptotic two-sample KS p-value of the distance less its sketch error bound:
    Q_KS(max(0, D − ε)·sqrt(n·m/(n+m))), Q_KS the Kolmogorov survival function
    (``scipy.stats.kstwobign``); 1 if a side is empty. Conservative by ε."""
    if n <= 0 or m <= 0:
        return 1.0
    x = max(0.0, d - error_bound) * math.sqrt(n * m / (n + m))
    return float(stats.kstwobign.sf(x))
