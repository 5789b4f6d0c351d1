"""The only place that builds restic command lines and runs restic."""
