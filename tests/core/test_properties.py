"""Property-based tests (Hypothesis) of the input edges: random input gives a result or a sadkit error
(``SadkitError`` and its subclasses), never another exception.

Examples per property, in CI (``max_examples``), kept modest so the suite stays fast:
``parse_value`` 200, ``parse_pairs`` 200, ``check_features`` 150, ``check_labels`` 200,
``read_table`` on written frames 40, ``read_table`` on random bytes 60.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.extra.pandas import column, data_frames

from sadkit.cli.common import parse_pairs, parse_value
from sadkit.data import check_features, check_labels
from sadkit.errors import SadkitError
from sadkit.tables import read_table

SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}

#: what a command-line value may become: plain YAML data, never a date or another Python object
PLAIN = (int, float, str, bool, type(None), list, dict)


def _plain(value) -> bool:
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, PLAIN) and _plain(v) for k, v in value.items())
    return isinstance(value, PLAIN)


# ---------------------------------------------------------------------------------------- key=value


yaml_like = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\A[\[\]{}:,\-\d.eE+ a-z'\"!&*#|>%@`?]{0,30}\Z"),  # YAML's syntax characters
    st.dates().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
)


@settings(max_examples=200, **SETTINGS)
@given(yaml_like)
@example("0000-00-00")  # YAML's date constructor raised ValueError
def test_parse_value_gives_plain_data_or_a_sadkit_error(text):
    try:
        value = parse_value(text)
    except SadkitError:
        return
    assert _plain(value), (text, value)


@settings(max_examples=200, **SETTINGS)
@given(st.lists(st.tuples(st.text(max_size=12), st.sampled_from(["=", ""]), yaml_like), max_size=5))
def test_parse_pairs_gives_a_dict_or_a_sadkit_error(parts):
    pairs = [f"{k}{sep}{v}" for k, sep, v in parts]
    try:
        out = parse_pairs(pairs, "--param")
    except SadkitError as err:
        assert "--param expects key=value" in str(err)
        assert any("=" not in p or not p.partition("=")[0].strip() for p in pairs)
        return
    assert set(out) == {p.partition("=")[0].strip() for p in pairs}
    assert all(_plain(v) for v in out.values())


def test_parse_value_examples():
    assert parse_value("1e-4") == 1e-4 and parse_value("3") == 3 and parse_value("[20]") == [20]
    assert parse_value("2021-01-01") == "2021-01-01"  # a date stays the text the user typed
    assert parse_value("{hidden: [64, 32]}") == {"hidden": [64, 32]}


# ---------------------------------------------------------------------------------------- features and labels

dtypes = st.one_of(
    hnp.floating_dtypes(),
    hnp.integer_dtypes(),
    hnp.boolean_dtypes(),
    hnp.complex_number_dtypes(),
    hnp.unicode_string_dtypes(max_len=4),
)
arrays = dtypes.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
ragged = st.recursive(
    st.one_of(st.none(), st.floats(), st.integers(-(2**70), 2**70), st.text(max_size=3)),
    lambda children: st.lists(children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, **SETTINGS)
@given(st.one_of(arrays, ragged), st.integers(0, 3))
@example(np.array([[1 + 1j, 2]]), 1)
@example([None, []], 0)
def test_check_features_gives_finite_float32_or_a_sadkit_error(X, min_samples):
    try:
        out = check_features(X, min_samples=min_samples)
    except SadkitError:
        return
    assert out.dtype == np.float32 and out.ndim >= 2 and len(out) >= min_samples
    assert np.isfinite(out).all()
    assert not np.iscomplexobj(X)


labels = st.one_of(
    hnp.arrays(
        st.one_of(hnp.floating_dtypes(), hnp.integer_dtypes(), hnp.boolean_dtypes(), hnp.complex_number_dtypes()),
        hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=6),
    ),
    hnp.arrays(np.int8, st.integers(0, 6), elements=st.sampled_from([-1, 0, 1])),
    st.lists(st.one_of(st.sampled_from([-1, 0, 1, math.nan, None, "1", "x", True]), st.floats()), max_size=6),
    st.lists(st.sampled_from([-1, 0, 1]), max_size=6).map(pd.Series),
    st.none(),
)


@settings(max_examples=200, **SETTINGS)
@given(labels, st.integers(0, 6))
@example(np.array([1 + 1j]), 1)  # numpy would cast it to 1 (an anomaly), dropping the imaginary part
@example(["0000-00-00"], 1)
def test_check_labels_gives_minus_one_zero_one_or_a_sadkit_error(y, n):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a column vector is flattened with scikit-learn's warning
            out = check_labels(y, n)
    except SadkitError:
        return
    assert out.dtype == np.int64 and out.shape == (n,)
    assert set(np.unique(out)) <= {-1, 0, 1}
    if y is not None and len(np.asarray(y, dtype=object).ravel()):
        values = np.asarray(y, dtype=object).ravel()
        assert not any(isinstance(v, (complex, np.complexfloating)) and v.imag != 0 for v in values)


# ---------------------------------------------------------------------------------------- tables

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
frames = data_frames(
    columns=[
        column(dtype=float),
        column(dtype=int),
        column(elements=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=5)),
    ],
    rows=None,
)


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        np.save(path, frame.select_dtypes("number").to_numpy(), allow_pickle=False)


@settings(max_examples=40, **SETTINGS)
@given(frames, st.lists(names, min_size=3, max_size=3), st.sampled_from(["csv", "tsv", "parquet", "npy"]))
def test_read_table_reads_what_was_written_or_says_why(frame, columns, fmt):
    frame.columns = columns if fmt not in ("parquet",) or len(set(columns)) == 3 else ["a", "b", "c"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"t.{fmt}"
        _write(frame, path, fmt)
        try:
            out = read_table(path)
        except SadkitError:
            return
    assert isinstance(out, pd.DataFrame)
    if fmt in ("parquet", "npy"):
        assert len(out) == len(frame)


@settings(max_examples=60, **SETTINGS)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.sampled_from([b"PAR1", b"\x93NUMPY", b"a,b\n1,2\n3", b'a,"b\n1', b"\x00\x00", b"a\tb\n1\t2\t3\n"]).flatmap(
            lambda head: st.binary(max_size=64).map(lambda tail: head + tail)
        ),
    ),
    st.sampled_from(["csv", "tsv", "parquet", "npy"]),
)
def test_read_table_of_random_bytes_gives_a_frame_or_a_sadkit_error(content, fmt):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"t.{fmt}"
        path.write_bytes(content)
        try:
            out = read_table(path)
        except SadkitError:
            return
    assert isinstance(out, pd.DataFrame)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "npy"])
def test_read_table_round_trip_example(tmp_path, fmt):
    frame = pd.DataFrame({"x0": [1.0, 2.0], "x1": [3.0, 4.0]})
    _write(frame, tmp_path / f"t.{fmt}", fmt)
    pd.testing.assert_frame_equal(read_table(tmp_path / f"t.{fmt}"), frame)
