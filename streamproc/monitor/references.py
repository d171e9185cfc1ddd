"""Reference profiles by model and version: which reference a record is compared with."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from streamproc.core.errors import ProfileFormatError
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.errors import UsageError


@dataclass(frozen=True)
class ReferenceSet:
    """References keyed by (model, model_version).

    A record routes to the reference of its exact (model, version) when there is one,
    else to the model's only (or most recently built) reference: a new model version
    is still compared with what the model was trained on. A model without any
    reference is unknown.
    """

    by_version: Mapping[tuple[str, str], ModelProfile]
    by_model: Mapping[str, ModelProfile]

    @classmethod
    def of(cls, profiles: Iterable[ModelProfile]) -> ReferenceSet:
        by_version: dict[tuple[str, str], ModelProfile] = {}
        by_model: dict[str, ModelProfile] = {}
        for prof in profiles:
            by_version[(prof.model, prof.model_version)] = prof
            current = by_model.get(prof.model)
            created = float(prof.metadata.get("created_at", 0.0))
            if current is None or created >= float(current.metadata.get("created_at", 0.0)):
                by_model[prof.model] = prof
        return cls(by_version, by_model)

    @classmethod
    def load(cls, paths: Iterable[Path]) -> ReferenceSet:
        """Read reference profiles; a missing or unreadable file is a one-line error."""
        profiles = []
        for path in paths:
            try:
                profiles.append(ModelProfile.from_bytes(Path(path).read_bytes()))
            except FileNotFoundError as exc:
                raise UsageError(
                    f"reference profile {path} not found; build one with "
                    "`streamproc reference build`"
                ) from exc
            except ProfileFormatError as exc:
                raise UsageError(f"reference profile {path} is unusable: {exc}") from exc
        if not profiles:
            raise UsageError("no reference profile given; pass --reference FILE")
        return cls.of(profiles)

    def is_known(self, model: str) -> bool:
        return model in self.by_model

    def get(self, model: str, model_version: str) -> ModelProfile | None:
        return self.by_version.get((model, model_version)) or self.by_model.get(model)

    def feature_kinds(self, model: str, model_version: str) -> dict[str, FeatureKind]:
        ref = self.get(model, model_version)
        if ref is None:
            return {}
        return {name: prof.kind for name, prof in ref.features.items()}
