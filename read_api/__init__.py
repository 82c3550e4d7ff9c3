"""The read API: lists, details, history and analytics — from read models only."""
