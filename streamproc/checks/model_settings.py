"""Per-model configuration: ``[models.<model>.slices]``, ``.fairness`` and ``.rollout``.

::

    [models.credit.slices]          # segment analysis (off unless configured)
    dimensions = ["country", "device"]   # segment keys; empty: discovered (at most 8)
    features = ["region"]           # categorical features sliced like segment keys
    crossings = [["country", "device"]]
    top_k = 20                      # values per dimension with a slice of their own
    max_slices = 50                 # per model and window, OTHER slices included
    key_features = ["amount"]       # drift-checked per slice; empty: the first 5
    fdr = 0.05                      # Benjamini-Hochberg across the slices of a check

    [models.credit.fairness]        # protected attributes are declared, never inferred
    protected = ["gender"]          # segment keys or categorical features
    positive = "1"                  # the predicted label that is a positive decision
    threshold = 0.5                 # without ``positive``: score >= threshold
    min_group_size = 30             # and every FairnessPolicy threshold

    [models.fraud.rollout]          # a declared champion/challenger
    champion = "v1"
    challenger = "v2"
    mode = "ab"                     # or "shadow" (same request ids)
    primary_metric = "accuracy"     # and every RolloutPolicy field

``[models."*".<section>]`` applies to every model without its own section.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from streamproc.checks.fairness_checks import FairnessPolicy
from streamproc.checks.version_checks import RolloutPolicy
from streamproc.core.segments import SlicingPolicy
from streamproc.core.slice_profiles import DEFAULT_MAX_SLICES, SliceSpec
from streamproc.errors import UsageError

ANY_MODEL: Final = "*"


class ModelConfigError(UsageError):
    """A bad ``[models.<model>]`` section."""


@dataclass(frozen=True)
class RolloutSpec:
    champion: str
    challenger: str
    mode: Literal["shadow", "ab"] = "ab"
    policy: RolloutPolicy = field(default_factory=RolloutPolicy)


@dataclass(frozen=True)
class ModelSettings:
    """What ``[models.<model>]`` declares for one model."""

    slicing: SlicingPolicy | None = None
    """Set when ``[models.<model>.slices]`` exists: slices get profiles and checks."""
    slice_features: tuple[str, ...] = ()
    key_features: tuple[str, ...] = ()
    fdr: float = 0.05
    protected: tuple[str, ...] = ()
    positive: str | None = None
    threshold: float = 0.5
    fairness: FairnessPolicy = field(default_factory=FairnessPolicy)
    rollout: RolloutSpec | None = None

    def slice_spec(self) -> SliceSpec | None:
        """What ingest and the join slice by (None: nothing)."""
        if self.slicing is None and not self.protected:
            return None
        policy = self.slicing or SlicingPolicy(dimensions=self.protected)
        if policy.dimensions:  # feature dimensions are dimensions too
            dims = tuple(dict.fromkeys((*policy.dimensions, *self.slice_features)))
            policy = dataclasses.replace(policy, dimensions=dims)
        return SliceSpec(
            policy,
            feature_dimensions=self.slice_features,
            key_features=self.key_features,
            protected=self.protected,
            positive=self.positive,
            threshold=self.threshold,
            profile_slices=self.slicing is not None,
        )


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise ModelConfigError(f"{where} must be a list of names")
    return tuple(value)


def _same_type(default: object, value: object) -> bool:
    """Whether a TOML value fits a field with this default (numbers: int or float)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int | float) or default is None:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def _fields(cls: type[Any], table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Keyword arguments of dataclass ``cls`` from ``table`` (typed like the defaults)."""
    out: dict[str, Any] = {}
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in table.items():
        f = known.get(key)
        if f is None:
            raise ModelConfigError(f"unknown key '{where}.{key}' (known: {', '.join(known)})")
        if not _same_type(f.default, value):
            raise ModelConfigError(f"bad value for '{where}.{key}': {value!r}")
        is_int = isinstance(f.default, int) and not isinstance(f.default, bool)
        out[key] = int(value) if is_int else value
    return out


def _slices(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    own = dict(table)
    out: dict[str, Any] = {}
    for key, dest in (("features", "slice_features"), ("key_features", "key_features")):
        if key in own:
            out[dest] = _strings(own.pop(key), f"{where}.{key}")
    if "fdr" in own:
        fdr = own.pop("fdr")
        if not isinstance(fdr, int | float) or not 0 < fdr < 1:
            raise ModelConfigError(f"{where}.fdr must be in (0, 1)")
        out["fdr"] = float(fdr)
    kwargs: dict[str, Any] = {}
    if "dimensions" in own:
        kwargs["dimensions"] = _strings(own.pop("dimensions"), f"{where}.dimensions")
    if "crossings" in own:
        raw = own.pop("crossings")
        if not isinstance(raw, list) or not all(
            isinstance(c, list) and len(c) == 2 and all(isinstance(x, str) for x in c) for c in raw
        ):
            raise ModelConfigError(f'{where}.crossings must be a list of ["dim", "dim"] pairs')
        kwargs["crossings"] = tuple((a, b) for a, b in raw)
    kwargs.setdefault("max_slices", DEFAULT_MAX_SLICES)
    kwargs |= _fields(SlicingPolicy, own, where)
    try:
        out["slicing"] = SlicingPolicy(**kwargs)
    except ValueError as exc:
        raise ModelConfigError(f"bad [{where}]: {exc}") from None
    return out


def _fairness(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    own = dict(table)
    if "protected" not in own:
        raise ModelConfigError(f"[{where}] needs protected = [...] (its attributes)")
    out: dict[str, Any] = {"protected": _strings(own.pop("protected"), f"{where}.protected")}
    if "positive" in own:
        pos = own.pop("positive")
        if not isinstance(pos, str | int | bool):
            raise ModelConfigError(f"{where}.positive must be a label value")
        out["positive"] = str(pos).lower() if isinstance(pos, bool) else str(pos)
    if "threshold" in own:
        t = own.pop("threshold")
        if not isinstance(t, int | float) or isinstance(t, bool):
            raise ModelConfigError(f"{where}.threshold must be a number")
        out["threshold"] = float(t)
    try:
        out["fairness"] = FairnessPolicy(**_fields(FairnessPolicy, own, where))
    except ValueError as exc:
        raise ModelConfigError(f"bad [{where}]: {exc}") from None
    return out


def _rollout(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    own = dict(table)
    try:
        champion, challenger = str(own.pop("champion")), str(own.pop("challenger"))
    except KeyError:
        raise ModelConfigError(f"[{where}] needs champion and challenger versions") from None
    mode = own.pop("mode", "ab")
    if mode not in ("ab", "shadow"):
        raise ModelConfigError(f'{where}.mode must be "ab" or "shadow", got {mode!r}')
    if champion == challenger:
        raise ModelConfigError(f"[{where}]: champion and challenger are the same version")
    try:
        policy = RolloutPolicy(**_fields(RolloutPolicy, own, where))
    except ValueError as exc:
        raise ModelConfigError(f"bad [{where}]: {exc}") from None
    if mode == "shadow" and policy.primary_metric not in ("accuracy", "roc_auc"):
        raise ModelConfigError(f"{where}.primary_metric must be accuracy or roc_auc (shadow)")
    return {"rollout": RolloutSpec(champion, challenger, mode, policy)}


_SECTIONS: Final = {"slices": _slices, "fairness": _fairness, "rollout": _rollout}


def parse_models(table: object, source: str) -> Mapping[str, ModelSettings]:
    """``[models]`` → model name (or ``*``) → :class:`ModelSettings`."""
    if not isinstance(table, Mapping):
        raise ModelConfigError(f"[models] must be a table in {source}")
    out: dict[str, ModelSettings] = {}
    for model, sections in table.items():
        if not isinstance(sections, Mapping):
            raise ModelConfigError(f"[models.{model}] must be a table in {source}")
        kwargs: dict[str, Any] = {}
        for name, body in sections.items():
            parse = _SECTIONS.get(name)
            where = f"models.{model}.{name}"
            if parse is None:
                raise ModelConfigError(
                    f"unknown section [{where}] in {source} (known: {', '.join(_SECTIONS)})"
                )
            if not isinstance(body, Mapping):
                raise ModelConfigError(f"[{where}] must be a table in {source}")
            try:
                kwargs |= parse(body, where)
            except ModelConfigError as exc:
                raise ModelConfigError(f"{exc} in {source}") from None
        out[str(model)] = ModelSettings(**kwargs)
    return out


def settings_for(models: Mapping[str, ModelSettings], model: str) -> ModelSettings:
    """The model's own settings, else ``*``'s, else none."""
    return models.get(model) or models.get(ANY_MODEL) or ModelSettings()
