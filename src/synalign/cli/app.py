"""The `synalign` command line: the typer app, its commands and the entry point."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
import typer.main
from rich.markup import escape

from synalign import __version__
from synalign.cli.console import err, out
from synalign.cli.data_commands import align, datasets_list, export
from synalign.cli.errors import click_exceptions, command_of, usage_line
from synalign.cli.evaluate_commands import evaluate, report
from synalign.cli.flags import flag_hint
from synalign.cli.pipeline_commands import demo, generate, run
from synalign.errors import SynAlignError

__all__ = ["app", "err", "main", "out"]

app = typer.Typer(
    help="SynAlign: few-shot LLM synthetic data that follows your real data's distribution.\n\n"
    "Exploration (a Gaussian process picks diverse demonstration clusters), latent attribute "
    "reasoning (the LLM names what a cluster has in common, then writes new samples that "
    "carry it) and alignment (MMD weights per synthetic sample, then resampling).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
datasets_app = typer.Typer(help="The real labelled corpora bundled with SynAlign.")
app.add_typer(datasets_app, name="datasets")
for _command in (demo, run, generate, align, export, evaluate, report):
    app.command()(_command)
datasets_app.command("list")(datasets_list)


def _version(value: bool) -> None:
    if value:
        out.print(f"synalign {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """SynAlign command line."""


def main() -> None:
    """Entry point: user mistakes end in one line on stderr, never a traceback."""
    usage_error, click_exception = click_exceptions()
    try:
        code = app(standalone_mode=False, prog_name="synalign")
    except SynAlignError as e:
        _, command = command_of(typer.main.get_command(app), sys.argv[1:])
        message = flag_hint(str(e), command)
        err.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except usage_error as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # a bare `synalign`: its help
            ctx = getattr(e, "ctx", None)
            out.print(ctx.get_help() if ctx is not None else "", highlight=False, markup=False)
            sys.exit(2)
        line = usage_line(e, sys.argv[1:], typer.main.get_command(app))
        err.print(f"[bold red]error:[/bold red] {escape(line)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except click_exception as e:
        e.show()  # type: ignore[attr-defined]
        sys.exit(e.exit_code)  # type: ignore[attr-defined]
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    if code == 130:  # typer turns Ctrl-C into exit code 130
        err.print(
            "interrupted; everything received so far is kept. Re-run the same command to resume."
        )
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
