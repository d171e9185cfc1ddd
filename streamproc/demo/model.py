"""The demo's synthetic "credit-risk" model: its inputs, its scores, and the incident.

Ten numeric features with the shapes such data have (log-normal incomes and loan
amounts, a clipped normal credit score, Poisson counts, Beta ratios) and four
categoricals, a default-probability score from a logistic model of the inputs, a
predicted label and a serving latency. :func:`sample` draws ``n`` rows; with an
:class:`Incident` it applies the scripted failure:

* ``income`` shifts up by ``income_shift_sd`` reference standard deviations (a
  new marketing channel brings wealthier applicants),
* ``loan_purpose`` re-weights towards ``business`` (the campaign's product),
* ``employment_years`` is null for ``null_share`` of rows (an upstream join breaks),
* ``channel`` gains a category never seen in training, ``partner_api``, on
  ``new_category_share`` of rows (a partner integration goes live).

The ground truth (did the applicant default?) comes from the same generative process:
:func:`outcomes` draws it from the score, ``P(default) = sigmoid(k · logit(score))`` with
``k = TRUTH_SHARPNESS`` (the outcome is more certain than the model says, so the
predicted label is right about 94% of the time). With a :class:`ConceptDrift` the
relationship flips for ``flip_share`` of rows: the inputs and the scores stay exactly
what they were, only the outcomes change (concept drift).

Everything is vectorized numpy; one call per producer tick.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa

from streamproc.core import reference_performance
from streamproc.core.model_profile import ModelProfile

MODEL: Final = "credit-risk"
MODEL_VERSION: Final = "2024.06"

NUMERIC: Final = (
    "age",
    "income",
    "loan_amount",
    "debt_to_income",
    "credit_score",
    "employment_years",
    "open_accounts",
    "delinquencies_2y",
    "credit_utilization",
    "account_tenure_months",
)
CATEGORICAL: Final = ("loan_purpose", "region", "channel", "home_ownership")
FEATURES: Final = NUMERIC + CATEGORICAL

LOAN_PURPOSES: Final = (
    "debt_consolidation",
    "home_improvement",
    "car",
    "education",
    "medical",
    "business",
    "other",
)
LOAN_PURPOSE_P: Final = (0.38, 0.18, 0.14, 0.08, 0.07, 0.05, 0.10)
LOAN_PURPOSE_INCIDENT_P: Final = (0.24, 0.14, 0.11, 0.06, 0.05, 0.32, 0.08)
REGIONS: Final = ("northeast", "midwest", "south", "west")
REGION_P: Final = (0.18, 0.21, 0.38, 0.23)
CHANNELS: Final = ("web", "mobile", "branch", "broker")
CHANNEL_P: Final = (0.45, 0.35, 0.12, 0.08)
NEW_CHANNEL: Final = "partner_api"
HOME_OWNERSHIP: Final = ("rent", "mortgage", "own")
HOME_OWNERSHIP_P: Final = (0.42, 0.45, 0.13)

INCOME_LOG_MEAN: Final = 10.9
INCOME_LOG_SD: Final = 0.5
EMPLOYMENT_NULL_SHARE: Final = 0.01
"""Baseline share of applicants without an employment history on file."""


def income_sd() -> float:
    """Standard deviation of the reference income (log-normal), in currency units."""
    m, s = INCOME_LOG_MEAN, INCOME_LOG_SD
    return float(np.sqrt((np.exp(s * s) - 1.0) * np.exp(2 * m + s * s)))


@dataclass(frozen=True)
class Incident:
    """What goes wrong in the incident phase (see the module docstring)."""

    income_shift_sd: float = 1.0
    null_share: float = 0.30
    new_category_share: float = 0.12


@dataclass(frozen=True)
class ConceptDrift:
    """What goes wrong in the concept-drift phase: the outcome of ``flip_share`` of the
    applications is the opposite of what the model's process says (inputs unchanged)."""

    flip_share: float = 0.40


POSITIVE: Final = "deny"
"""The positive class (the applicant defaults, so the model should deny)."""
TRUTH_SHARPNESS: Final = 5.0
"""``k`` of :func:`outcomes`."""


@dataclass
class Sample:
    """``n`` rows: feature columns (numpy; ``None`` marks a null), scores, labels, latency."""

    features: dict[str, np.ndarray]
    scores: np.ndarray
    labels: np.ndarray
    latency_ms: np.ndarray

    @property
    def n(self) -> int:
        return len(self.scores)


def _choice(rng: np.random.Generator, values: tuple[str, ...], p: tuple[float, ...], n: int) -> Any:
    return rng.choice(np.array(values, dtype=object), n, p=np.array(p) / sum(p))


def sample(rng: np.random.Generator, n: int, incident: Incident | None = None) -> Sample:
    """Draw ``n`` applications and the model's answers; ``incident`` applies the failure."""
    age = np.clip(np.round(rng.normal(41, 12, n)), 18, 85)
    income = rng.lognormal(INCOME_LOG_MEAN, INCOME_LOG_SD, n)
    if incident is not None:
        income = income + incident.income_shift_sd * income_sd()
    loan = np.round(rng.lognormal(9.6, 0.7, n), -1)
    dti = np.clip(rng.beta(2.2, 6.0, n) * 0.9, 0.0, 0.9)
    score = np.clip(np.round(rng.normal(690, 55, n)), 300, 850)
    employment = np.round(rng.gamma(2.0, 3.5, n), 1)
    accounts = rng.poisson(7, n).astype(np.float64)
    delinquencies = rng.poisson(0.35, n).astype(np.float64)
    utilization = rng.beta(2.0, 3.2, n)
    tenure = np.round(rng.exponential(48, n))
    purpose_p = LOAN_PURPOSE_INCIDENT_P if incident is not None else LOAN_PURPOSE_P
    features: dict[str, np.ndarray] = {
        "age": age,
        "income": np.round(income, 2),
        "loan_amount": loan,
        "debt_to_income": np.round(dti, 4),
        "credit_score": score,
        "employment_years": employment,
        "open_accounts": accounts,
        "delinquencies_2y": delinquencies,
        "credit_utilization": np.round(utilization, 4),
        "account_tenure_months": tenure,
        "loan_purpose": _choice(rng, LOAN_PURPOSES, purpose_p, n),
        "region": _choice(rng, REGIONS, REGION_P, n),
        "channel": _choice(rng, CHANNELS, CHANNEL_P, n),
        "home_ownership": _choice(rng, HOME_OWNERSHIP, HOME_OWNERSHIP_P, n),
    }
    null_share = incident.null_share if incident is not None else EMPLOYMENT_NULL_SHARE
    emp = features["employment_years"].astype(object)
    emp[rng.random(n) < null_share] = None
    features["employment_years"] = emp
    if incident is not None and incident.new_category_share > 0:
        channel = features["channel"]
        channel[rng.random(n) < incident.new_category_share] = NEW_CHANNEL
    # Logistic default-risk model of the (true) inputs: the score moves with the inputs.
    z = (
        -1.3
        - 0.9 * (np.log(income) - INCOME_LOG_MEAN) / INCOME_LOG_SD
        + 0.5 * (np.log(loan) - 9.6) / 0.7
        + 2.5 * (dti - 0.22)
        - 0.012 * (score - 690)
        + 0.45 * delinquencies
        + 1.2 * (utilization - 0.38)
        + rng.normal(0, 0.4, n)
    )
    scores = 1.0 / (1.0 + np.exp(-z))
    labels = np.where(scores >= 0.5, "deny", "approve").astype(object)
    latency = np.round(rng.lognormal(np.log(18.0), 0.35, n), 2)
    return Sample(features, np.round(scores, 5), labels, latency)


def outcomes(
    rng: np.random.Generator, scores: np.ndarray, drift: ConceptDrift | None = None
) -> np.ndarray:
    """The true outcome of each scored application, ``"deny"`` (it defaulted) or
    ``"approve"``: ``P(default) = sigmoid(k · logit(score))``; ``drift`` flips it for a
    share of rows (see the module docstring)."""
    s = np.clip(np.asarray(scores, dtype=np.float64), 1e-6, 1.0 - 1e-6)
    p = 1.0 / (1.0 + np.exp(-TRUTH_SHARPNESS * np.log(s / (1.0 - s))))
    defaulted = rng.random(len(s)) < p
    if drift is not None and drift.flip_share > 0:
        defaulted ^= rng.random(len(s)) < drift.flip_share
    return np.where(defaulted, POSITIVE, "approve").astype(object)


def _column(values: np.ndarray) -> Any:
    """A reference column: numeric object arrays with ``None`` become masked pyarrow arrays."""
    if values.dtype == object and not any(isinstance(v, str) for v in values[:10]):
        mask = np.fromiter((v is None for v in values), bool, len(values))
        dense = np.where(mask, 0.0, values).astype(np.float64)
        return pa.array(dense, mask=mask)
    return values


def build_reference(n: int = 50_000, seed: int = 20240601) -> ModelProfile:
    """The reference profile from ``n`` rows of "training data" (no incident), with the
    reference performance of the validation outcomes (:func:`outcomes`; positive class
    :data:`POSITIVE`) that the performance checks compare labeled windows with."""
    s = sample(np.random.default_rng(seed), n)
    profile = ModelProfile.build_reference(
        MODEL,
        MODEL_VERSION,
        {name: _column(col) for name, col in s.features.items()},
        created_at=time.time(),
        predictions=s.scores,
        predicted_labels=s.labels,
        latency_ms=s.latency_ms,
        source="streamproc demo: synthetic credit-risk training data",
    )
    truth = outcomes(np.random.default_rng(seed + 1), s.scores)
    perf = reference_performance.build(
        list(truth), scores=s.scores, predicted=list(s.labels), positive=POSITIVE
    )
    profile.metadata[reference_performance.KEY] = perf.to_meta()
    return profile
