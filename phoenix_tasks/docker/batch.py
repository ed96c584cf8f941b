"""Batched remote reads: one `sh -c` script prints several docker outputs, each part
after this separator line (stack and swarm reads split on it)."""

SEPARATOR = "--- phoenix ---"
