"""The transformer family, its file format, and importers (tracr)."""
