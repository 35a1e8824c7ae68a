"""Use cases. Services flush but never commit; the request commits before answering."""
