"""Database settings and connections shared by the API server and the migration."""

import os

import psycopg2


def settings():
    """Connection settings from the environment (DATABASE_HOST, _PORT, _NAME, _USER, _PASSWORD)."""
    return {
        "host": os.environ.get("DATABASE_HOST", "localhost"),
        "port": int(os.environ.get("DATABASE_PORT", "5432")),
        "dbname": os.environ.get("DATABASE_NAME", "guestbook"),
        "user": os.environ.get("DATABASE_USER", "guestbook"),
        "password": os.environ.get("DATABASE_PASSWORD", ""),
        "connect_timeout": int(os.environ.get("DATABASE_CONNECT_TIMEOUT", "3")),
        "application_name": os.environ.get("APP_NAME", "guestbook"),
    }


def connect():
    """A new connection; callers close it (one per request keeps the server stateless)."""
    return psycopg2.connect(**settings())
