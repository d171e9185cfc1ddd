"""Reference profiles built from files hold the data's exact counts and moments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.offline import readers
from streamproc.offline.errors import InputError
from streamproc.offline.reference import build_reference, profile_like
from tests.unit.offline.conftest import make_table, write

ROLES = {"prediction_col": "score", "timestamp_col": "ts", "id_col": "id", "label_col": "label"}


def _build(path: Path, **kw: object) -> ModelProfile:
    return build_reference([path], model="m", model_version="1", **{**ROLES, **kw})  # type: ignore[arg-type]


def test_csv_reference_has_exact_counts_nulls_and_moments(
    data_files: dict[str, Path], table: pa.Table
) -> None:
    prof = _build(data_files["csv"])
    n = table.num_rows
    assert prof.row_count == n
    assert set(prof.features) == {"x", "y", "k", "color", "flag"}
    assert prof.features["x"].kind is FeatureKind.NUMERIC
    assert prof.features["k"].kind is FeatureKind.NUMERIC
    assert prof.features["color"].kind is FeatureKind.CATEGORICAL
    assert prof.features["flag"].kind is FeatureKind.BOOLEAN
    for name in ("x", "y", "k"):
        col = table[name]
        values = col.to_numpy(zero_copy_only=False).astype(float)
        values = values[~np.isnan(values)]
        f = prof.features[name]
        assert f.count == n
        assert f.null_count == col.null_count
        assert f.mean == pytest.approx(values.mean(), rel=1e-9)
        assert f.std == pytest.approx(values.std(), rel=1e-9)
        assert f.min == values.min() and f.max == values.max()
    color = table["color"]
    f = prof.features["color"]
    assert f.null_count == color.null_count
    expected = {v: color.to_pylist().count(v) for v in ("red", "green", "blue")}
    assert dict(f.top_categories(10)) == expected
    flag = [v for v in table["flag"].to_pylist() if v is not None]
    assert dict(prof.features["flag"].top_categories(2)) == {
        "true": sum(flag),
        "false": len(flag) - sum(flag),
    }
    assert prof.prediction is not None
    assert prof.prediction.mean == pytest.approx(table["score"].to_numpy().mean(), rel=1e-9)
    ts = table["ts"].cast(pa.int64()).to_numpy()
    assert prof.event_time_min == ts.min() and prof.event_time_max == ts.max()
    assert prof.schema["color"].kind is FeatureKind.CATEGORICAL
    assert set(prof.schema["color"].categories) == {"red", "green", "blue"}
    assert prof.metadata["prediction_col"] == "score"
    assert prof.metadata["role"] == "reference"


def test_csv_parquet_jsonl_give_the_same_profile_counts(data_files: dict[str, Path]) -> None:
    profiles = {fmt: _build(path) for fmt, path in data_files.items()}
    base = profiles["parquet"]
    for fmt, prof in profiles.items():
        assert prof.row_count == base.row_count, fmt
        assert prof.features.keys() == base.features.keys(), fmt
        for name, f in prof.features.items():
            b = base.features[name]
            assert f.kind is b.kind, (fmt, name)
            assert (f.count, f.null_count, f.invalid_count) == (
                b.count,
                b.null_count,
                b.invalid_count,
            ), (fmt, name)
            if f.kind is FeatureKind.NUMERIC:
                assert f.mean == pytest.approx(b.mean, rel=1e-12), (fmt, name)
            else:
                assert f.top_categories(10) == b.top_categories(10), (fmt, name)
        assert prof.event_time_min == base.event_time_min, fmt


def test_many_small_batches_equal_one_big_batch(
    data_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _build(data_files["csv"])
    monkeypatch.setattr(readers, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(
        readers.DataFile.__init__, "__kwdefaults__", {"block_bytes": 2048, "batch_rows": 100}
    )
    parts = _build(data_files["csv"])
    assert parts.row_count == whole.row_count
    for name, f in parts.features.items():
        assert f.count == whole.features[name].count
        assert f.null_count == whole.features[name].null_count
        if f.kind is FeatureKind.NUMERIC:
            assert f.mean == pytest.approx(whole.features[name].mean, rel=1e-9)


def test_options_select_and_override(data_files: dict[str, Path]) -> None:
    prof = _build(data_files["parquet"], categorical=["k"], exclude=["y"])
    assert set(prof.features) == {"x", "k", "color", "flag"}
    assert prof.features["k"].kind is FeatureKind.CATEGORICAL
    assert prof.features["k"].distinct_estimate() == 5
    prof = _build(data_files["parquet"], features=["x,color"])
    assert set(prof.features) == {"x", "color"}


def test_string_prediction_becomes_predicted_label(tmp_path: Path) -> None:
    t = pa.table({"a": [1.0, 2.0, 3.0], "pred": ["yes", "no", "yes"]})
    prof = build_reference([write(t, tmp_path / "d.csv")], model="m", prediction_col="pred")
    assert prof.prediction is None
    assert prof.predicted_label is not None
    assert dict(prof.predicted_label.top_categories(5)) == {"yes": 2, "no": 1}
    assert set(prof.features) == {"a"}


def test_several_files_add_up(tmp_path: Path) -> None:
    a = write(make_table(1000, seed=1), tmp_path / "a.parquet")
    b = write(make_table(500, seed=2), tmp_path / "b.csv")
    prof = build_reference([a, b], model="m", **ROLES)  # type: ignore[arg-type]
    assert prof.row_count == 1500
    assert prof.metadata["source"] == ["a.parquet", "b.csv"]


def test_profile_like_uses_reference_kinds(tmp_path: Path, data_files: dict[str, Path]) -> None:
    ref = _build(data_files["parquet"], categorical=["k"])
    cur = profile_like(ref, [write(make_table(800, seed=9), tmp_path / "cur.jsonl")])
    assert cur.features.keys() == ref.features.keys()
    assert cur.features["k"].kind is FeatureKind.CATEGORICAL
    assert cur.row_count == 800
    assert cur.prediction is not None and cur.prediction.count == 800


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": ["x,nope"]}, "column 'nope' named by --features is not in"),
        ({"categorical": ["nope"]}, "column 'nope' named by --categorical"),
        ({"prediction_col": "nope"}, "column 'nope' named by --prediction-col"),
        ({"exclude": ["x,y,k,color,flag"]}, "no feature columns left"),
        ({"features": ["score"]}, "both a feature and the --prediction-col column"),
    ],
)
def test_bad_options_are_input_errors(
    data_files: dict[str, Path], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        _build(data_files["csv"], **kwargs)


def test_header_only_file_is_input_error(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("a,b\n")
    with pytest.raises(InputError, match="no data rows"):
        build_reference([path], model="m")


def test_current_missing_reference_column_is_input_error(
    tmp_path: Path, data_files: dict[str, Path]
) -> None:
    ref = _build(data_files["parquet"])
    other = write(pa.table({"x": [1.0, 2.0]}), tmp_path / "other.csv")
    with pytest.raises(InputError, match="named by the reference profile's schema is not in"):
        profile_like(ref, [other])


def test_progress_line_reports_rows_and_bytes(data_files: dict[str, Path]) -> None:
    import io

    stream = io.StringIO()
    build_reference([data_files["csv"]], model="m", show_progress=True, progress_stream=stream)
    text = stream.getvalue()
    assert text.startswith("\rtrain.csv")
    assert "100.0% 4k rows" in text
    assert "rows/s" in text and text.endswith("\n")


def test_long_training_categories_are_capped_as_the_worker_caps_them(tmp_path: Path) -> None:
    import hashlib

    import pyarrow.csv as pacsv

    long_value = "z" * 1_000
    table = pa.table({"c": ["a", long_value, long_value, "b"], "x": [1.0, 2.0, 3.0, 4.0]})
    path = tmp_path / "long.csv"
    pacsv.write_csv(table, path)
    prof = build_reference([path], model="m", model_version="1")
    # 256 bytes: a 236-byte prefix, the mark "…#" (4 bytes) and 16 hex digits of SHA-256
    token = "z" * 236 + "…#" + hashlib.sha256(long_value.encode()).hexdigest()[:16]
    assert len(token.encode()) == 256
    assert dict(prof.features["c"].top_categories(10)) == {token: 2, "a": 1, "b": 1}
