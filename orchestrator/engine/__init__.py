"""A run: plan -> lock -> backup -> verify -> record."""
