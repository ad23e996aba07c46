"""Options several commands share, and how their values become config overrides.

An option that sets a config key says so in its help text, "(config key `KEY`)": the
help then tells the user which key the flag stands for, and `synalign.cli.flags` reads
the same words back to name the flag in an error that names the key.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from synalign.backends.llm.generators import generator_names


def keyed(text: str, key: str) -> str:
    """`text` as the help of an option that sets config key `key`."""
    return f"{text.rstrip('.')} (config key `{key}`)."


SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override any config key, e.g. --set generate.samples_per_label=100 "
        "(repeatable; values are read as TOML literals).",
    ),
]
LLMOption = Annotated[
    str | None,
    typer.Option(
        "--llm",
        help=keyed(
            "LLM backend: 'llamacpp' (local GGUF; the bundled model by default) or 'openai' "
            "(any OpenAI-compatible endpoint; key from $OPENAI_API_KEY).",
            "llm.backend",
        ),
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help=keyed(
            "Model name for --llm openai; with --llm llamacpp a named generator "
            "(gemma-3-270m, qwen2.5-coder-1.5b) or a GGUF file (llm.model_path)",
            "llm.model",
        ),
    ),
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help=keyed("Endpoint for --llm openai; $OPENAI_BASE_URL if unset.", "llm.base_url"),
    ),
]
ExecutorOption = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help=keyed(
            "Where LLM calls and embeddings run: 'local' (this process) or 'ray' (the "
            "workers of a Ray cluster; pip install 'synalign[ray]'). Same outputs either way.",
            "executor",
        ),
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help=keyed(
            "Ray cluster for --executor ray: 'auto' (started here with `ray start --head`) "
            "or HOST:6379; $RAY_ADDRESS, else a Ray instance on this machine, if unset.",
            "ray_address",
        ),
    ),
]
NameOption = Annotated[
    str | None,
    typer.Option(help=keyed("Run name: the folder under --runs-dir.", "name")),
]
RunsDirOption = Annotated[
    str | None, typer.Option(help=keyed("Parent folder of run directories.", "runs_dir"))
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Re-run every stage even if it is up to date.")
]


def llm_overrides(llm: str | None, model: str | None, base_url: str | None) -> list[str]:
    """The backend flags as config overrides (strings quoted as TOML)."""
    sets = []
    named = model in generator_names()
    model_key = "llm.model_path" if llm == "llamacpp" and not named else "llm.model"
    for key, value in (("llm.backend", llm), (model_key, model), ("llm.base_url", base_url)):
        if value is not None:
            sets.append(f"{key}={json.dumps(value)}")
    return sets


def executor_overrides(executor: str | None, ray_address: str | None) -> list[str]:
    """--executor / --ray-address as config overrides (set only when given)."""
    sets = []
    for key, value in (("executor", executor), ("ray_address", ray_address)):
        if value is not None:
            sets.append(f"{key}={json.dumps(value)}")
    return sets
