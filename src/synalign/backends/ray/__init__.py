"""The Ray executor: LLM and embedder workers spread over a cluster."""

from synalign.backends.ray.cluster import check_ray
from synalign.backends.ray.executor import RayEmbedder, RayLLM, executor_embedder, executor_llm

__all__ = ["RayEmbedder", "RayLLM", "check_ray", "executor_embedder", "executor_llm"]
