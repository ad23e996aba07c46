"""Keeps the Hugging Face libraries off the network while SynAlign loads its bundled models.

The bundled models and corpora ship inside installed packages, so loading them never
needs the hub. Offline mode holds only while they load and only when the user has not
set `HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE` themselves: a user's own Hugging Face code
in the same process reaches the hub as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

_USER_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@contextmanager
def bundled_models_offline() -> Iterator[None]:
    """Offline mode for the block, unless the user chose a mode; then theirs holds."""
    # Tokenizers fork-safety: their thread pool would warn in every forked worker.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if any(name in os.environ for name in _USER_SWITCHES):
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before
        os.environ.pop("HF_HUB_OFFLINE", None)
