"""An error the agent reports back by name; the host raises the matching ``rock_envs.sandbox.errors`` class."""

from __future__ import annotations


class Fault(Exception):
    def __init__(self, type_name: str, message: str):
        super().__init__(message)
        self.type_name = type_name
        self.message = message
