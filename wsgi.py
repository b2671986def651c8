"""WSGI entry point for gunicorn and `flask --app wsgi run` from a checkout."""

from app.wsgi import app

__all__ = ["app"]
