"""The `synalign` command line: typer commands over the pipeline, evaluation and report."""

from synalign.cli.app import main

__all__ = ["main"]
