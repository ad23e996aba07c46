"""The terminal the commands write to: results on stdout, progress and errors on stderr."""

from __future__ import annotations

from rich.console import Console

out = Console()
err = Console(stderr=True)


def quiet_libraries() -> None:
    """Keep the terminal to SynAlign's own lines: the model libraries' warnings and logs
    say nothing the user can act on."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("transformers", "sentence_transformers", "torch", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
