"""Adapters to external platforms."""
