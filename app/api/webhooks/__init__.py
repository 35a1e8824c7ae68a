"""Webhooks called by voice platforms."""
