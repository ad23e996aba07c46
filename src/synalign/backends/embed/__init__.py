"""Embedders: the bundled MiniLM or a local sentence-transformers folder, with a cache."""
