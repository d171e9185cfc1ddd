"""Worker configuration for a run with topics of its own (tests and benchmarks)."""

from __future__ import annotations

from typing import Any


def config_mapping(bootstrap: str, prefix: str, **sections: dict[str, Any]) -> dict[str, Any]:
    """A ``config_from_mapping`` mapping whose group and topics are named after ``prefix``
    (so runs never share them); each keyword adds to (or overrides in) that section."""
    data: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": f"{prefix}.g"},
        "topics": {
            "predictions": f"{prefix}.predictions",
            "alerts": f"{prefix}.alerts",
            "deadletter": f"{prefix}.dlq",
            "profiles": f"{prefix}.profiles",
            "retrain": f"{prefix}.retrain",
            "rollouts": f"{prefix}.rollouts",
        },
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return data
