"""Read models built from the event log, the worker that feeds them, and their queries."""
