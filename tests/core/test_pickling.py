"""Env factories pickled by value keep their file name and line numbers, whatever cloudpickle does."""

from __future__ import annotations

import pickle
import subprocess
import sys

import cloudpickle
import pytest

from rock_envs.core import pickling
from rock_envs.core.pickling import CodeVersionError

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # as a script's or notebook's code travels


class Exploding:
    def step(self, action):
        raise ValueError(f"boom at {action}")  # THE RAISING LINE


def factory(i):
    return Exploding()


def _raising_line() -> int:
    lines = open(__file__).read().splitlines()
    return next(n for n, line in enumerate(lines, 1) if "# THE RAISING LINE" in line and "raise" in line)


LOAD_AND_STEP = """
import sys, traceback
from rock_envs.core import pickling
env = pickling.loads(sys.stdin.buffer.read())(0)
try:
    env.step(3)
except ValueError:
    frame = traceback.extract_tb(sys.exc_info()[2])[-1]
    print(frame.filename, frame.lineno, frame.name, sep="|")
"""


def test_a_factory_pickled_by_value_raises_in_another_process_with_this_files_name_and_line():
    """The other process cannot import this test module (its folder is not on its path), as a worker."""
    data = pickling.dumps(factory)
    assert b"test_pickling" in data  # by value: the class and its code are in the bytes
    out = subprocess.run(
        [sys.executable, "-c", LOAD_AND_STEP], input=data, capture_output=True, cwd="/", check=True, timeout=60
    )
    filename, lineno, name = out.stdout.decode().strip().split("|")
    assert (filename, int(lineno), name) == (__file__, _raising_line(), "step")


def test_closures_and_lambdas_still_travel():
    offset = 10
    data = pickling.dumps(lambda i: i + offset)
    assert pickling.loads(data)(5) == 15


def test_what_it_writes_is_plain_pickle_data():
    assert pickle.loads(pickling.dumps(factory))(0).__class__.__name__ == "Exploding"


def test_code_from_another_python_version_fails_with_both_versions_named(monkeypatch):
    data = pickling.dumps(factory)
    monkeypatch.setattr(pickling, "_PYTHON", (3, 0))
    with pytest.raises(
        CodeVersionError, match=r"pickled by value under Python 3\.\d+, but this worker runs Python 3\.0"
    ):
        pickling.loads(data)
