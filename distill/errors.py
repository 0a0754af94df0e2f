"""Errors of `distill`: one root type; bad input is its own branch (exit status 2)."""


class DistillError(Exception):
    """Root of every error raised by `distill`."""


class BadInputError(DistillError):
    """The user gave something unusable: a bad file, option or value (exit 2)."""


class ModelFileError(BadInputError):
    """A model file that is unreadable or invalid; the message names the field."""
