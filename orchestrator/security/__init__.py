"""Secrets, redaction and (later) roles."""
