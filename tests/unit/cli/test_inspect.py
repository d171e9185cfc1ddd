"""`streamproc inspect`: state records (built from real WindowState / AlertState objects)
→ rows → JSON and tables; the read loop over a fake consumer; the command's errors."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from streamproc.checks.lifecycle import AlertState
from streamproc.cli import inspect_cmd
from streamproc.cli.main import main
from streamproc.monitor.state import WindowKey, WindowState
from streamproc.monitor.state_reader import (
    StateReadTimeout,
    decode_state,
    read_latest,
)
from streamproc.monitor.store import alert_record_key, window_record_key
from tests.support.state import T0, W, alert, window

TOPIC = "streamproc-profiles-state"


def wrec(w: WindowState, partition: int = 0) -> tuple[bytes, tuple[int, bytes | None]]:
    return window_record_key(w.key), (partition, w.to_bytes())


def arec(a: AlertState, partition: int = 0) -> tuple[bytes, tuple[int, bytes | None]]:
    return alert_record_key(a.fingerprint), (partition, orjson.dumps(a.to_dict()))


FIRING = alert(
    "feature_drift",
    "credit",
    "7",
    "income",
    status="firing",
    severity="critical",
    history=(True, True),
    started_at_ms=T0 + W,
    last_sent_ms=T0 + W,
    last_window_end_ms=T0 + 2 * W,
)
RESOLVED = alert(
    "staleness",
    "credit",
    "7",
    None,
    status="resolved",
    severity="warning",
    started_at_ms=T0,
    resolved_at_ms=T0 + 3 * W,
    last_window_end_ms=T0 + 3 * W,
)
NEVER = alert("completeness", "fraud", "2", "amount", history=(False,), clean_streak=1)


def records() -> dict[bytes, tuple[int, bytes | None]]:
    return dict(
        [
            wrec(window("credit", "7", T0 + W, 80, applied={"streamproc-profiles:1": 99})),
            wrec(
                window(
                    "credit",
                    "7",
                    T0,
                    120,
                    applied={"streamproc-profiles:0": 41, "streamproc-profiles:1": 7},
                    final=True,
                )
            ),
            wrec(window("fraud", "2", T0, 5, applied={"other:3": 12}), partition=2),
            (window_record_key(WindowKey("credit", "7", T0 - W)), (0, None)),  # purged
            (window_record_key(WindowKey("fraud", "2", T0 - W)), (2, None)),
            arec(NEVER, partition=2),
            arec(FIRING),
            arec(RESOLVED),
            (b"not json", (1, b"x")),
            (b'["c","credit","7"]', (0, b'{"newest_event_ms": 1}')),  # another record kind
            (orjson.dumps(["w", "credit", "7", T0 + 9 * W]), (0, b"garbage")),
        ]
    )


# ---------------------------------------------------------------- decoding


def test_windows_decode_with_rows_finality_offsets_sorted() -> None:
    snap = decode_state(records())
    got = [(w.model, w.model_version, w.start_ms, w.end_ms, w.rows, w.final) for w in snap.windows]
    assert got == [
        ("credit", "7", T0, T0 + W, 120, True),
        ("credit", "7", T0 + W, T0 + 2 * W, 80, False),
        ("fraud", "2", T0, T0 + W, 5, False),
    ]
    assert dict(snap.windows[0].applied) == {
        "streamproc-profiles:0": 41,
        "streamproc-profiles:1": 7,
    }
    assert snap.windows[2].partition == 2
    assert snap.purged == [("credit", "7", T0 - W), ("fraud", "2", T0 - W)]


def test_alerts_decode_sorted_by_model_version_check_feature() -> None:
    snap = decode_state(records())
    got = [(a.model, a.check, a.feature, a.status, a.severity) for a in snap.alerts]
    assert got == [
        ("credit", "feature_drift", "income", "firing", "critical"),
        ("credit", "staleness", None, "resolved", "warning"),
        ("fraud", "completeness", "amount", "resolved", None),
    ]
    assert snap.alerts[0].fingerprint == FIRING.fingerprint
    assert snap.alerts[1].resolved_at_ms == T0 + 3 * W


def test_undecodable_records_are_listed_not_raised() -> None:
    snap = decode_state(records())
    assert len(snap.unreadable) == 2
    assert snap.other == {"c": 1}  # a kind this reader does not show is counted, not unreadable
    assert any(line.startswith("not json: not a state record key") for line in snap.unreadable)
    assert any(f'["w","credit","7",{T0 + 9 * W}]' in line for line in snap.unreadable)


def test_an_alert_state_with_a_wrong_fingerprint_is_unreadable() -> None:
    bad = {**FIRING.to_dict(), "fingerprint": "0" * 40}
    snap = decode_state({alert_record_key("0" * 40): (0, orjson.dumps(bad))})
    assert snap.alerts == [] and len(snap.unreadable) == 1


# ---------------------------------------------------------------- JSON and tables


def test_windows_document() -> None:
    doc = inspect_cmd.document("windows", decode_state(records()), TOPIC)
    assert doc["state_topic"] == TOPIC and doc["model"] is None and doc["purged"] == 2
    assert doc["windows"][0] == {
        "model": "credit",
        "model_version": "7",
        "start": "2024-05-01T10:00:00Z",
        "end": "2024-05-01T10:05:00Z",
        "start_ms": T0,
        "end_ms": T0 + W,
        "rows": 120,
        "final": True,
        "applied": {"streamproc-profiles:0": 41, "streamproc-profiles:1": 7},
        "partition": 0,
    }
    assert len(doc["unreadable"]) == 2
    assert orjson.loads(orjson.dumps(doc)) == doc  # JSON-ready


def test_model_filter() -> None:
    snap = decode_state(records())
    windows = inspect_cmd.document("windows", snap, TOPIC, "fraud")
    assert [w["start_ms"] for w in windows["windows"]] == [T0]
    assert windows["purged"] == 1 and windows["model"] == "fraud"
    alerts = inspect_cmd.document("alerts", snap, TOPIC, "credit")
    assert [a["check"] for a in alerts["alerts"]] == ["feature_drift", "staleness"]


def test_alerts_document() -> None:
    doc = inspect_cmd.document("alerts", decode_state(records()), TOPIC)
    assert "windows" not in doc and "purged" not in doc
    assert doc["alerts"][0] == {
        "fingerprint": FIRING.fingerprint,
        "model": "credit",
        "model_version": "7",
        "check": "feature_drift",
        "feature": "income",
        "status": "firing",
        "severity": "critical",
        "started_at": "2024-05-01T10:05:00Z",
        "resolved_at": None,
        "last_window_end": "2024-05-01T10:10:00Z",
        "partition": 0,
    }
    assert doc["alerts"][2]["started_at"] is None and doc["alerts"][2]["severity"] is None


def test_windows_plain_text_is_aligned() -> None:
    doc = inspect_cmd.document("windows", decode_state(records()), TOPIC)
    assert inspect_cmd.plain_text(doc) == (
        "MODEL   VERSION  START                 END                   ROWS  STATE  APPLIED\n"
        "credit  7        2024-05-01T10:00:00Z  2024-05-01T10:05:00Z   120  final  p0=41 p1=7\n"
        "credit  7        2024-05-01T10:05:00Z  2024-05-01T10:10:00Z    80  open   p1=99\n"
        "fraud   2        2024-05-01T10:00:00Z  2024-05-01T10:05:00Z     5  open   other:3=12\n"
        "3 windows in streamproc-profiles-state (2 purged)\n"
    )


def test_alerts_plain_text() -> None:
    doc = inspect_cmd.document("alerts", decode_state(records()), TOPIC)
    lines = inspect_cmd.plain_text(doc).splitlines()
    assert lines[0].split() == [
        "MODEL",
        "VERSION",
        "CHECK",
        "FEATURE",
        "STATUS",
        "SEVERITY",
        "STARTED",
        "RESOLVED",
    ]
    assert lines[1].split() == [
        "credit",
        "7",
        "feature_drift",
        "income",
        "firing",
        "critical",
        "2024-05-01T10:05:00Z",
        "-",
    ]
    assert lines[2].split() == [
        "credit",
        "7",
        "staleness",
        "-",
        "resolved",
        "warning",
        "2024-05-01T10:00:00Z",
        "2024-05-01T10:15:00Z",
    ]
    assert (
        lines[3].split() == ["fraud", "2", "completeness", "amount", "never", "fired"] + ["-"] * 3
    )
    assert lines[4] == "3 alert states in streamproc-profiles-state"
    # every column starts at the same offset on every line
    starts = [lines[0].index("STATUS")] * 3
    assert [lines[i].index(w) for i, w in ((1, "firing"), (2, "resolved"), (3, "never"))] == starts


def test_empty_table_is_a_caption() -> None:
    doc = inspect_cmd.document("windows", decode_state({}), TOPIC, "credit")
    assert inspect_cmd.plain_text(doc) == "0 windows of model credit in " + TOPIC + "\n"


def test_json_and_terminal_rendering() -> None:
    doc = inspect_cmd.document("alerts", decode_state(records()), TOPIC)
    assert orjson.loads(inspect_cmd.render(doc, "json", terminal=True) or "") == doc
    assert inspect_cmd.render(doc, "table", terminal=True) is None  # → rich
    assert inspect_cmd.render(doc, "table", terminal=False) == inspect_cmd.plain_text(doc)


def test_rich_table() -> None:
    from rich.console import Console

    doc = inspect_cmd.document("alerts", decode_state(records()), TOPIC)
    buffer = io.StringIO()
    assert inspect_cmd._print_rich(doc, Console(file=buffer, width=160))
    out = buffer.getvalue()
    for text in ("feature_drift", "income", "never fired", "2024-05-01T10:15:00Z"):
        assert text in out
    assert "3 alert states in streamproc-profiles-state" in out


# ---------------------------------------------------------------- the command


@pytest.fixture
def fake_read(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    calls: list[tuple[str, float]] = []

    def read_state(config: Any, topic: str, timeout_s: float) -> Any:
        calls.append((topic, timeout_s))
        calls.append((config.kafka.bootstrap_servers, 0.0))
        return records()

    monkeypatch.setattr(inspect_cmd, "read_state", read_state)
    return calls


def test_command_json(fake_read: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            *("inspect", "windows", "--format", "json", "--model", "credit"),
            *("--bootstrap-servers", "kafka:9092", "--timeout", "5s"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    doc = orjson.loads(out)
    assert [w["rows"] for w in doc["windows"]] == [120, 80]
    assert fake_read == [(TOPIC, 5.0), ("kafka:9092", 0.0)]
    assert err.count("warning: unreadable state record") == 2


def test_command_table_and_state_topic_from_config(
    fake_read: list[Any], capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text('[topics]\nprofiles = "team-a-profiles"\n', encoding="utf-8")
    assert main(["inspect", "alerts", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("MODEL")  # not a terminal: plain text
    assert out.splitlines()[-1] == "3 alert states in team-a-profiles-state"
    assert fake_read[0] == ("team-a-profiles-state", 60.0)
    assert main(["inspect", "alerts", "--state-topic", "x-state"]) == 0
    assert fake_read[2] == ("x-state", 60.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "windows", "--timeout", "soon"], "--timeout"),
        (["inspect", "windows", "--timeout", "0s"], "--timeout must be positive"),
    ],
)
def test_usage_errors(
    fake_read: list[Any], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("streamproc: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_no_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect"]) == 2
    assert "windows" in capsys.readouterr().out


def test_bad_format_is_an_argparse_error() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["inspect", "windows", "--format", "yaml"])
    assert exc.value.code == 2


# ---------------------------------------------------------------- the read loop


@dataclass
class FakeMessage:
    p: int
    off: int
    k: bytes
    v: bytes | None

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.off

    def key(self) -> bytes:
        return self.k

    def value(self) -> bytes | None:
        return self.v


class FakeConsumer:
    """Partitions of (offset, key, value) logs; offsets missing from a log are
    transaction markers (never delivered, but they occupy offsets)."""

    def __init__(
        self, logs: dict[int, list[tuple[int, bytes, bytes | None]]], ends: dict[int, int]
    ):
        self.logs, self.ends = logs, ends
        self.pos: dict[int, int] = {}
        self.delivered = 0

    def get_watermark_offsets(self, tp: Any, timeout: float) -> tuple[int, int]:
        return 0, self.ends[tp.partition]

    def assign(self, tps: list[Any]) -> None:
        self.pos = {tp.partition: 0 for tp in tps}

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        out = []
        for p in list(self.pos):
            for off, k, v in self.logs.get(p, []):
                if off >= self.pos[p]:
                    out.append(FakeMessage(p, off, k, v))
            self.pos[p] = self.ends[p]  # markers past the last record are skipped too
        self.delivered += len(out)
        return out

    def position(self, tps: list[Any]) -> list[Any]:
        return [type("TP", (), {"offset": self.pos.get(tp.partition, 0)})() for tp in tps]


def test_read_latest_keeps_the_last_value_per_key_and_stops_at_markers() -> None:
    logs = {
        0: [(0, b"a", b"1"), (1, b"b", b"1"), (2, b"a", b"2")],  # offset 3: a commit marker
        1: [(0, b"c", b"1"), (1, b"c", None)],
    }
    consumer = FakeConsumer(logs, ends={0: 4, 1: 2, 2: 0})
    latest = read_latest(consumer, TOPIC, [0, 1, 2], timeout_s=5)  # type: ignore[arg-type]
    assert latest == {b"a": (0, b"2"), b"b": (0, b"1"), b"c": (1, None)}
    assert consumer.pos == {0: 4, 1: 2}  # the empty partition 2 is never assigned


class StuckConsumer(FakeConsumer):
    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        return []


def test_read_latest_times_out_or_returns_partial() -> None:
    stuck = StuckConsumer({}, ends={0: 3})
    with pytest.raises(StateReadTimeout, match=r"partition\(s\) \[0\]"):
        read_latest(stuck, TOPIC, [0], timeout_s=0.01)  # type: ignore[arg-type]
    assert read_latest(stuck, TOPIC, [0], timeout_s=0.01, partial_ok=True) == {}  # type: ignore[arg-type]
