"""`streamproc alerts forward`: arguments and one-line usage errors (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamproc.cli.main import build_parser, main


def test_forward_is_registered() -> None:
    args = build_parser().parse_args(
        ["alerts", "forward", "--alertmanager", "http://am:9093", "--group-id", "g"]
    )
    assert args.alertmanager == "http://am:9093"
    assert args.group_id == "g"
    assert args.batch_size == 500


def test_alerts_without_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts"]) == 2
    assert "forward" in capsys.readouterr().out


def test_bad_url_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "forward", "--alertmanager", "alertmanager:9093"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "streamproc: error: --alertmanager must be an http(s) URL such as "
        "http://alertmanager:9093, got 'alertmanager:9093'"
    )


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--firing-ttl", "30m"], "must exceed the re-notify interval"),
        (["--firing-ttl", "soon"], "--firing-ttl: not a duration"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
    ],
)
def test_bad_options(extra: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "forward", "--alertmanager", "http://am:9093", *extra]) == 2
    assert says in capsys.readouterr().err


def test_bad_config_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    argv = ["alerts", "forward", "--alertmanager", "http://am:9093", "--config", str(missing)]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"streamproc: error: config file not found: {missing}"
