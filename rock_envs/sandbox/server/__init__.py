"""The sandbox server: ``create_app(...)`` builds it; ``python -m rock_envs.sandbox.server`` runs it;
``serve_dashboard()`` serves an embedded manager's dashboard from the caller's event loop."""

from .app import create_app
from .embedded import EmbeddedDashboard, serve_dashboard

__all__ = ["EmbeddedDashboard", "create_app", "serve_dashboard"]
