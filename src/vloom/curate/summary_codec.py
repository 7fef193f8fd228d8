"""The bytes of a partition's round summary (mix's per-source counts, histograms and unit
sums) without pickle: the files sit on storage a cluster shares, and reading a pickle runs
whatever it names. A summary is a tree of dicts (any hashable keys of the kinds below),
tuples, lists, ints (any size), floats, strings, None and numpy arrays; the tree is JSON,
the arrays sit beside it in an .npz read with allow_pickle=False."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

_TREE = "tree"


def dumps(obj: Any) -> bytes:
    arrays: list[np.ndarray] = []

    def enc(x: Any) -> Any:
        if isinstance(x, np.ndarray):
            if x.dtype.hasobject:
                raise TypeError("a partition summary cannot hold an object array")
            arrays.append(x)
            return {"nd": len(arrays) - 1}
        if isinstance(x, np.generic):
            return enc(x.item())
        if isinstance(x, dict):
            return {"map": [[enc(k), enc(v)] for k, v in x.items()]}
        if isinstance(x, tuple):
            return {"tuple": [enc(v) for v in x]}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if x is None or isinstance(x, bool | int | float | str):
            return x
        raise TypeError(f"a partition summary cannot hold {type(x).__name__}")

    tree = json.dumps(enc(obj)).encode()
    buf = io.BytesIO()
    np.savez(
        buf,
        tree=np.frombuffer(tree, np.uint8),
        **{f"a{i}": a for i, a in enumerate(arrays)},
    )
    return buf.getvalue()


def loads(data: bytes) -> Any:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}

    def dec(x: Any) -> Any:
        if isinstance(x, list):
            return [dec(v) for v in x]
        if isinstance(x, dict):
            if "nd" in x:
                return arrays[f"a{x['nd']}"]
            if "tuple" in x:
                return tuple(dec(v) for v in x["tuple"])
            return {_hashable(dec(k)): dec(v) for k, v in x["map"]}
        return x

    return dec(json.loads(arrays[_TREE].tobytes()))


def _hashable(k: Any) -> Any:
    return tuple(_hashable(v) for v in k) if isinstance(k, list | tuple) else k
