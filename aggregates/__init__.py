"""The write model: Client, Contact and Deal aggregates, their events and their rules."""
