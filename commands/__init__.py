"""The write side: command models, the application service, and the command API."""
