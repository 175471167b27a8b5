"""Where things are: the repository and its examples, the interpreter tests run (and spawn), temp dirs."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PYTHON = sys.executable


def short_tmp(prefix: str = "re-") -> str:
    """A new directory under /tmp. Short on purpose: unix socket paths must stay under 108 bytes."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")
