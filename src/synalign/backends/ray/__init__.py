"""The Ray executor: LLM and embedder workers spread over a cluster."""
