"""Partition round summaries are stored without pickle and read back exactly."""

from __future__ import annotations

import io

import numpy as np
import pytest

from vloom.curate import summary_codec


def test_mix_like_summaries_round_trip():
    counts = np.bincount(np.array([0, 1, 1, 3]), minlength=5)
    supply = (np.arange(6, dtype=np.int64).reshape(2, 3), [[2**70, 1], [0, -5]])
    hist = {(0, 1): np.ones(4, np.int64), (1, 0): np.zeros(4, np.int64)}
    nested = {"a": [1, 2.5, None, "x", True], 3: (np.float32(1.5), np.int64(7))}
    for obj in (counts, supply, hist, nested):
        back = summary_codec.loads(summary_codec.dumps(obj))
        assert type(back) is type(obj)
    back = summary_codec.loads(summary_codec.dumps(supply))
    assert np.array_equal(back[0], supply[0]) and back[1] == supply[1]  # big ints exact
    back = summary_codec.loads(summary_codec.dumps(hist))
    assert set(back) == {(0, 1), (1, 0)} and np.array_equal(back[0, 1], hist[0, 1])
    assert summary_codec.loads(summary_codec.dumps(nested)) == {
        "a": [1, 2.5, None, "x", True],
        3: (1.5, 7),
    }


def test_what_it_cannot_store_or_read_is_refused():
    with pytest.raises(TypeError, match="cannot hold set"):
        summary_codec.dumps({"s": {1, 2}})
    with pytest.raises(TypeError):
        summary_codec.dumps(np.array([object()], dtype=object))
    # a file that smuggles a pickle (an object array) is not unpickled
    buf = io.BytesIO()
    np.savez(buf, tree=np.frombuffer(b'{"nd": 0}', np.uint8), a0=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        summary_codec.loads(buf.getvalue())
    with pytest.raises(Exception):  # noqa: B017  (zip damage: any of several errors)
        summary_codec.loads(summary_codec.dumps([1, 2])[:-20])


def test_a_damaged_summary_is_named_and_removed_for_the_rerun(tmp_path):
    from vloom.curate.base import CurateError
    from vloom.curate.partition import _summary

    good = tmp_path / "part0-P4-r0-1.npz"
    good.write_bytes(summary_codec.dumps({(0, 1): np.arange(3)}))
    assert np.array_equal(_summary(good)[0, 1], np.arange(3))
    bad = tmp_path / "part0-P4-r0-2.npz"
    bad.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(CurateError, match=r"part0-P4-r0-2.npz: unreadable partition summary"):
        _summary(bad)
    assert not bad.exists() and good.exists()
