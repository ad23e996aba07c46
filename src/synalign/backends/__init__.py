"""Backends behind protocols: LLMs, embedders and the Ray executor."""
