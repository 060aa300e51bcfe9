"""Huey tasks. Imported by ``wsgi.py`` so the consumer and the web app share one registry."""
