"""Persistence: tables, engine and repositories (all SQL lives here)."""
