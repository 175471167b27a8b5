"""The backends every shared suite runs against: the vector suite and `make(id, backend=...)`.

Each entry names the backend, its pytest marks, and whether its workers are processes on this
machine (the tests that send real signals need that). A later backend joins by adding itself to
`BACKENDS`; the `backend` fixture (tests/conftest.py) fills in what reaches it: the docker image,
the session's Ray cluster, the session's server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass(frozen=True)
class Backend:
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)  # what `make`/`make_vec` need to reach it
    marks: tuple[Any, ...] = ()
    local_processes: bool = False  # workers are processes on this machine with real pids
    variant: str = ""  # a second run of a backend with other options (its test id: name-variant)

    @property
    def id(self) -> str:
        return f"{self.name}-{self.variant}" if self.variant else self.name


BACKENDS = [
    Backend("local"),
    Backend("subprocess", local_processes=True),
    # Worker 0 in the caller, the others over lanes: the whole suite again (no real signals: a
    # signal to worker 0 would be one to the test itself).
    Backend("subprocess", kwargs={"caller_worker": True}, variant="caller"),
    Backend("docker", marks=(pytest.mark.docker,)),  # image: the session's test image
    Backend("ray", marks=(pytest.mark.ray,)),  # on the session's local Ray cluster
    Backend("remote"),  # url and token: the session's server process on 127.0.0.1
]
