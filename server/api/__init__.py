"""The HTTP API: `create_app(settings)` returns the FastAPI app (see server/api/app.py)."""

from server.api.app import create_app

__all__ = ["create_app"]
