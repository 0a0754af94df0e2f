"""The report of a distillation: its schema (JSON), how it is built, HTML and SVG."""
