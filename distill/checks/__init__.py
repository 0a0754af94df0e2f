"""Checks of a program against a model over a whole domain, streamed as arrays."""
