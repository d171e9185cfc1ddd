"""`streamproc reference build`, `profile show` and `drift`, run in-process and once as a
console script: exit codes, stdout values and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from streamproc.cli.main import main
from streamproc.core.model_profile import ModelProfile
from tests.unit.offline.conftest import make_table, write


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "train": write(make_table(6000, seed=1), tmp_path / "train.parquet"),
        "same": write(make_table(6000, seed=2), tmp_path / "same.csv"),
        "shifted": write(make_table(6000, seed=3, shift=True), tmp_path / "shifted.jsonl"),
        "ref": tmp_path / "ref.profile",
    }


def build(capsys: pytest.CaptureFixture[str], files: dict[str, Path], *extra: str) -> None:
    code, out, err = run(
        capsys,
        *("reference", "build", "--model", "fraud", "--model-version", "7"),
        *("--data", str(files["train"]), "--out", str(files["ref"])),
        *("--id-col", "id", "--timestamp-col", "ts", "--label-col", "label"),
        *(extra if "--prediction-col" in extra else (*extra, "--exclude", "score")),
    )
    assert code == 0, err
    assert err == ""  # no progress line off a terminal
    assert "6,000 rows, 5 features" in out


def test_reference_build_writes_profile_with_exact_values(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    build(capsys, files, "--prediction-col", "score")
    prof = ModelProfile.from_bytes(files["ref"].read_bytes())
    table = make_table(6000, seed=1)
    assert (prof.model, prof.model_version, prof.row_count) == ("fraud", "7", 6000)
    x = table["x"].to_numpy(zero_copy_only=False)
    assert prof.features["x"].null_count == int(np.isnan(x).sum())
    assert prof.features["x"].mean == pytest.approx(np.nanmean(x), rel=1e-9)
    assert prof.prediction is not None and prof.prediction.count == 6000
    assert set(prof.schema) == {"x", "y", "k", "color", "flag"}


def test_profile_show_table_and_json(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    build(capsys, files, "--prediction-col", "score")
    code, out, _ = run(capsys, "profile", "show", str(files["ref"]))
    assert code == 0
    size = files["ref"].stat().st_size
    assert f"{size:,} B" in out
    assert "fraud  version 7" in out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert "color" in lines and "categorical" in lines["color"]
    x_line = lines["x"].split()
    assert x_line[1:3] == ["numeric", "6,000"]
    assert "p1" in lines["x"] and "p50" in lines["x"] and "p99" in lines["x"]
    assert "red" in lines["color"]
    # header and rows align: every row's "kind" column starts where the header's does
    header = next(ln for ln in out.splitlines() if ln.startswith("feature "))
    col = header.index("kind")
    assert all(lines[n][col:].startswith(("numeric", "categorical", "boolean")) for n in "xyk")
    code, out, _ = run(capsys, "profile", "show", str(files["ref"]), "--format", "json")
    doc = json.loads(out)
    assert doc["row_count"] == 6000 and doc["serialized_size"] == size
    assert doc["features"]["x"]["count"] == 6000


def test_drift_flags_exactly_the_shifted_features(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    build(capsys, files)
    code, out, err = run(
        capsys, "drift", "--reference", str(files["ref"]), "--current", str(files["shifted"]),
        "--format", "json", "--fail-on", "critical",
    )  # fmt: skip
    assert code == 1, err
    doc = json.loads(out)
    assert doc["status"] == "critical" and doc["failed"] is True
    assert sorted(doc["drifted_features"]) == ["color", "x"]
    assert set(doc["features"]) == {"x", "y", "k", "color", "flag"}
    x = doc["features"]["x"]
    assert x["kind"] == "numeric" and x["status"] == "critical"
    assert x["statistics"]["psi"] > 0.25 and x["statistics"]["ks"] > 0.2
    for key in ("psi", "ks", "js", "wasserstein", "chi2", "chi2_pvalue", "new_category_share"):
        assert key in x["statistics"]
    assert doc["features"]["color"]["statistics"]["chi2_pvalue"] < 1e-6
    for name in ("y", "k", "flag"):
        assert doc["features"][name]["status"] == "ok", name
    assert doc["n_reference"] == doc["n_current"] == 6000
    assert (
        doc["features"]["x"]["n_current"] + round(doc["features"]["x"]["null_rate_current"] * 6000)
        == 6000
    )


def test_drift_same_distribution_is_ok_and_table_is_readable(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    build(capsys, files)
    code, out, _ = run(
        capsys, "drift", "--reference", str(files["ref"]), "--current", str(files["same"]),
        "--fail-on", "warning",
    )  # fmt: skip
    assert code == 0
    assert "status: ok — no drift" in out
    header = next(ln for ln in out.splitlines() if ln.startswith("feature"))
    for title in ("kind", "n_ref", "n_cur", "PSI", "KS", "JS", "chi2 p", "new-cat", "status"):
        assert title in header
    rows = [ln for ln in out.splitlines() if ln.split()[:1] and ln.split()[0] in "xykcolorflag"]
    assert {r.split()[0] for r in rows} >= {"x", "y", "k", "color", "flag"}
    assert all(len(r) <= len(header) + 60 for r in rows)


def test_drift_current_can_be_a_profile(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    build(capsys, files)
    saved = tmp_path / "cur.profile"
    code, out_a, _ = run(
        capsys, "drift", "--reference", str(files["ref"]), "--current", str(files["shifted"]),
        "--format", "json", "--save-current", str(saved),
    )  # fmt: skip
    assert code == 0  # no --fail-on
    code, out_b, _ = run(
        capsys, "drift", "--reference", str(files["ref"]), "--current", str(saved),
        "--format", "json",
    )  # fmt: skip
    a, b = json.loads(out_a), json.loads(out_b)
    assert a["drifted_features"] == b["drifted_features"]
    assert a["features"]["x"]["statistics"] == b["features"]["x"]["statistics"]


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("streamproc: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


def test_bad_input_gives_one_line_errors(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    out = str(tmp_path / "o.profile")
    base = ["reference", "build", "--model", "m", "--out", out]
    code, _, err = run(capsys, *base, "--data", str(tmp_path / "missing.csv"))
    _one_line_error(code, err, "file not found", "missing.csv")

    (tmp_path / "empty.csv").write_text("")
    code, _, err = run(capsys, *base, "--data", str(tmp_path / "empty.csv"))
    _one_line_error(code, err, "is empty")

    (tmp_path / "header.csv").write_text("a,b\n")
    code, _, err = run(capsys, *base, "--data", str(tmp_path / "header.csv"))
    _one_line_error(code, err, "no data rows")

    (tmp_path / "bad.parquet").write_bytes(b"PAR1 garbage")
    code, _, err = run(capsys, *base, "--data", str(tmp_path / "bad.parquet"))
    _one_line_error(code, err, "cannot read", "as parquet", "complete Parquet file")

    (tmp_path / "data.xlsx").write_bytes(b"x")
    code, _, err = run(capsys, *base, "--data", str(tmp_path / "data.xlsx"))
    _one_line_error(code, err, "cannot tell the format", ".parquet")

    code, _, err = run(capsys, *base, "--data", str(files["train"]), "--features", "x,nope")
    _one_line_error(code, err, "'nope'", "--features", "its columns are")

    code, _, err = run(capsys, *base, "--data", str(files["train"]), "--prediction-col", "nope")
    _one_line_error(code, err, "'nope'", "--prediction-col")

    code, _, err = run(capsys, *base, "--data", str(files["train"]), "--out", "/no/such/dir/x")
    _one_line_error(code, err, "does not exist", "--out")

    bad_csv = tmp_path / "mixed.csv"
    bad_csv.write_text("v\n" + "1\n" * 600_000 + "abc\n")
    code, _, err = run(capsys, *base, "--data", str(bad_csv))
    _one_line_error(code, err, "cannot read", "mixed.csv", "'abc'", "--categorical")


def test_bad_profiles_give_one_line_errors(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    build(capsys, files)
    good = files["ref"].read_bytes()
    other_version = good[:4] + (99).to_bytes(2, "little") + good[6:]
    cases = {
        "version.profile": (other_version, "format version 99"),
        "corrupt.profile": (good[:50] + bytes(10) + good[60:], "checksum"),
        "truncated.profile": (good[: len(good) // 2], "truncated"),
        "empty.profile": (b"", "is empty"),
        "text.profile": (b"hello, not a profile", "not a usable streamproc profile"),
    }
    for name, (data, needle) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        code, _, err = run(capsys, "profile", "show", str(path))
        _one_line_error(code, err, needle)
        code, _, err = run(
            capsys, "drift", "--reference", str(path), "--current", str(files["same"])
        )
        _one_line_error(code, err, needle, "rebuild it")
    code, _, err = run(capsys, "profile", "show", str(tmp_path / "nope.profile"))
    _one_line_error(code, err, "profile not found")
    missing_col = write(pa.table({"x": [1.0, 2.0]}), tmp_path / "cur.csv")
    code, _, err = run(
        capsys, "drift", "--reference", str(files["ref"]), "--current", str(missing_col)
    )
    _one_line_error(code, err, "reference profile's schema", "cur.csv")


def test_console_script_subprocess(files: dict[str, Path], tmp_path: Path) -> None:
    exe = shutil.which("streamproc") or str(Path(sys.executable).parent / "streamproc")
    ref = tmp_path / "r.profile"
    proc = subprocess.run(
        [exe, "reference", "build", "--model", "m", "--data", str(files["train"]),
         "--id-col", "id", "--timestamp-col", "ts", "--label-col", "label", "--out", str(ref)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [exe, "drift", "--reference", str(ref), "--current", str(files["shifted"]),
         "--fail-on", "warning"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "CRITICAL" in proc.stdout
    proc = subprocess.run(
        [exe, "drift", "--reference", str(tmp_path / "none.profile"), "--current", "x.csv"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"streamproc: error: profile not found: {tmp_path / 'none.profile'}; check the path"
    )
