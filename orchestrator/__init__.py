"""A policy-driven backup and recovery orchestrator on top of restic."""

__version__ = "0.1.0"
