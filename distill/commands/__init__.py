"""CLI commands: every module here defines `register(app)` (found automatically)."""
