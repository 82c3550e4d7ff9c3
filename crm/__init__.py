"""Wiring: settings, the CLI and the assembly of the FastAPI app from the six folders."""
