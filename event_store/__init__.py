"""Persistence: where events and read models are stored (SQLite or PostgreSQL) and how."""
