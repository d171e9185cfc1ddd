"""`attach --sample`'s guesses: field roles and a proposed mapping the worker accepts."""

from __future__ import annotations

import tomllib
import uuid
from typing import Any

import numpy as np
import orjson

from streamproc.config import config_from_mapping
from streamproc.contracts.inference import infer
from streamproc.contracts.mapped_decode import map_records
from streamproc.contracts.prediction import decode_predictions

NOW_S = 1_714_557_603.0


def flat(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "txn_id": str(uuid.UUID(int=int(rng.integers(2**62)) + i)),
            "ts_ms": int((NOW_S - 600 + i) * 1000),
            "amount": round(float(rng.lognormal(3, 1)), 2),
            "country": str(rng.choice(["de", "fr", "us", "uk", "es"])),
            "is_new": bool(rng.random() < 0.3),
            "score": float(rng.random()),
            "label": "fraud" if rng.random() < 0.1 else "ok",
        }
        for i in range(n)
    ]


def roles(records: list[Any], **kw: Any) -> dict[str, tuple[str, str]]:
    return {g.pointer: (g.role, g.detail) for g in infer(records, now_s=NOW_S, **kw).fields}


def accepted(proposal_toml: str, records: list[Any], keys: list[bytes | None]) -> int:
    """Records the proposal, fed back through the config, maps and decodes."""
    config = config_from_mapping(tomllib.loads(proposal_toml))
    mapping = config.mapping.record_mapping()
    assert mapping is not None
    values = [orjson.dumps(r) for r in records]
    times = [int(NOW_S * 1000)] * len(values)
    mapped = map_records(mapping, values, keys=keys, timestamps_ms=times)
    result = mapped.restore(decode_predictions(mapped.values))
    assert result.rejects == []
    return result.n_accepted


def test_roles_of_a_flat_record() -> None:
    got = roles(flat(300))
    assert got["/txn_id"][0] == "id"
    assert got["/ts_ms"] == ("timestamp", "epoch ms")
    assert got["/amount"][0] == "numeric"
    assert got["/country"] == ("categorical", "5 values")
    assert got["/is_new"][0] == "boolean"
    assert got["/score"] == ("score", "in [0, 1]")
    assert got["/label"] == ("label", "2 values")


def test_proposal_for_a_flat_record_round_trips_through_the_worker_config() -> None:
    records = flat(300)
    proposal = infer(records, [None] * 300, model="fraud", now_s=NOW_S)
    assert proposal.mapping == {
        "model": "fraud",
        "model_version": "1",
        "request_id": "/txn_id",
        "timestamp": "/ts_ms",
        "prediction": {"label": "/label", "score": "/score"},
        "features": "*",
    }
    assert accepted(proposal.toml(), records, [None] * 300) == 300


def test_kafka_key_and_timestamp_when_the_record_has_neither() -> None:
    records = [{k: v for k, v in r.items() if k not in ("txn_id", "ts_ms")} for r in flat(200)]
    keys = [f"k{i}".encode() for i in range(200)]
    proposal = infer(records, keys, model="m", now_s=NOW_S)
    assert proposal.mapping["request_id"] == "$key"
    assert proposal.mapping["timestamp"] == "$timestamp"
    assert accepted(proposal.toml(), records, keys) == 200  # type: ignore[arg-type]


def test_class_probabilities_nested_model_and_rfc3339_times() -> None:
    rng = np.random.default_rng(3)
    records = []
    for i in range(200):
        p = rng.dirichlet([1, 1, 1])
        records.append(
            {
                "meta": {"model": "clf", "version": "7", "request": f"r-{i}"},
                "at": f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}Z",
                "x": float(rng.normal()),
                "probs": {"cat": float(p[0]), "dog": float(p[1]), "eel": float(p[2])},
            }
        )
    got = roles(records)
    assert got["/probs"] == ("probabilities", "3 classes")
    assert got["/at"] == ("timestamp", "RFC 3339")
    assert got["/meta/model"][0] == "model"
    proposal = infer(records, [None] * 200, now_s=NOW_S)
    assert proposal.mapping["model"] == "/meta/model"
    assert proposal.mapping["model_version"] == "/meta/version"
    assert proposal.mapping["request_id"] == "/meta/request"
    assert proposal.mapping["prediction"] == {"probabilities": "/probs"}
    assert "features_except" not in proposal.mapping  # "*" leaves out /meta: mapped from
    assert accepted(proposal.toml(), records, [None] * 200) == 200


def test_envelopes_need_no_mapping_and_odd_names_are_quoted() -> None:
    env = {
        "model": "m",
        "model_version": "1",
        "request_id": "r",
        "timestamp": NOW_S,
        "features": {},
        "prediction": 1.0,
    }
    proposal = infer([env] * 5, now_s=NOW_S)
    assert proposal.mapping == {} and "already envelopes" in proposal.notes[0]
    odd = infer([{"a b": 1.5, "ü\x7f": "x", "score": 0.5}] * 3, now_s=NOW_S, model='q"')
    table = tomllib.loads(odd.toml())["mapping"]
    assert table["model"] == 'q"'
    assert infer([1, "x", None], now_s=NOW_S).not_objects == 3
