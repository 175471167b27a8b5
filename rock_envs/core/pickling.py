"""Pickling env factories by value, keeping where their code came from.

Env factories and env classes defined in a script, a notebook or a test module travel to workers
with cloudpickle. From cloudpickle 3.1.3 on, every code object it pickles by value is rebuilt with
`co_filename="<dynamic-code>"`, so a traceback from a worker says `File "<dynamic-code>", line 51`
instead of naming the user's file. rock-envs' pickler reduces code objects with `marshal` instead,
which keeps every field of the code object (file name, qualified name, line table) and is, like
cloudpickle's by-value code, only readable by the same Python version: that is checked on load with
an error that names both versions.
"""

from __future__ import annotations

import io
import marshal
import pickle
import sys
import types
from collections import ChainMap
from typing import Any

import cloudpickle

from rock_envs.core.errors import CodeVersionError

_PYTHON = sys.version_info[:2]


def _load_code(python: tuple[int, int], data: bytes) -> types.CodeType:
    if tuple(python) != _PYTHON:
        raise CodeVersionError(
            f"Loading an env factory: its code was pickled by value under Python {python[0]}.{python[1]}, "
            f"but this worker runs Python {_PYTHON[0]}.{_PYTHON[1]}. Use the same Python version on both sides "
            "(for docker, an image built from this Python: `rock-envs image build`), or make the factory "
            "importable on the worker (an installed module is pickled by reference)."
        )
    code = marshal.loads(data)
    assert isinstance(code, types.CodeType)  # marshal of a code object gives a code object back
    return code


def _reduce_code(code: types.CodeType) -> tuple[Any, tuple[Any, ...]]:
    return _load_code, (_PYTHON, marshal.dumps(code))


class Pickler(cloudpickle.Pickler):
    """cloudpickle's pickler, with code objects that keep their file name and line numbers."""

    dispatch_table = ChainMap({types.CodeType: _reduce_code}, cloudpickle.Pickler.dispatch_table)


def dumps(obj: Any) -> bytes:
    """Pickle `obj` as cloudpickle does (lambdas, closures, classes by value), keeping code locations."""
    buffer = io.BytesIO()
    Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


loads = pickle.loads  # what was written by `dumps` is plain pickle data; cloudpickle's loads is this too
