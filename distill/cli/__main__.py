"""`python -m distill.cli`: the same as the `distill` command."""

from distill.cli import entry_point

entry_point()
