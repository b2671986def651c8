"""WSGI entry point of the installed package (`gunicorn app.wsgi:app`)."""

from app import create_app

app = create_app()
