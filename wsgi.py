"""WSGI entry point for gunicorn and `flask --app wsgi run`."""

from app import create_app

app = create_app()
