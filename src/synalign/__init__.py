"""SynAlign: few-shot LLM synthetic data that follows the real data's distribution."""

import os

# Everything SynAlign loads ships inside installed packages; never reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"

from synalign.errors import SynAlignError
from synalign.records import Record

__all__ = ["Record", "SynAlignError", "__version__"]
