"""The sandbox server: ``create_app(...)`` builds it; ``python -m rock_envs.sandbox.server`` runs it."""

from .app import create_app

__all__ = ["create_app"]
