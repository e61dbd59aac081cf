"""The ``orch`` command line.

Each command group lives in its own module under ``orch.cli`` and is registered below by name, so that ``orch
--help`` imports only Typer and each command imports what it needs when it runs. ``main()`` turns every error into
one line on stderr: exit code 2 for bad input and refused requests (never a traceback), 1 for the unexpected (with
``ORCH_DEBUG=1`` showing the traceback).
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

try:  # typer >= 0.20 ships its own click; usage errors and exits are that click's classes
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer on the system click
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

app = typer.Typer(
    name="orch",
    help="orch: workflows in plain Python, orchestrated on your laptop or serverless in your AWS account.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# (module, sub-command name or None for modules that add top-level commands). Missing modules are skipped, so
# features can land one at a time.
COMMAND_MODULES: list[tuple[str, str | None]] = [
    ("orch.cli.server", "server"),
    ("orch.cli.db", "db"),
    ("orch.cli.flows", "flow"),
    ("orch.cli.flow_runs", "flow-run"),
    ("orch.cli.deployments", "deployment"),
    ("orch.cli.deploy", None),
    ("orch.cli.work_queues", "work-queue"),
    ("orch.cli.agents", "agent"),
    ("orch.cli.auth", "auth"),
    ("orch.cli.profiles", "profile"),
    ("orch.cli.config", "config"),
    ("orch.cli.api_keys", "api-key"),
    ("orch.cli.build", "build"),
    ("orch.cli.stack", "stack"),
    ("orch.cli.quickstart", None),
]


def _register() -> None:
    for module_name, name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        if name is None:
            module.register(app)
        else:
            app.add_typer(module.app, name=name)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print orch's version and exit.", is_eager=True),
) -> None:
    if version:
        from orch import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``orch`` console script."""
    from orch.exceptions import OrchError

    _register()
    command = typer.main.get_command(app)
    debug = os.environ.get("ORCH_DEBUG", "").lower() in ("1", "true", "yes")  # read before settings can fail
    try:
        code = command.main(args=argv, prog_name="orch", standalone_mode=False)
    except click_exceptions.UsageError as exc:
        exc.show()
        sys.exit(2)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click_exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except OrchError as exc:
        if debug:
            raise
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        typer.echo(f"Error: unexpected {type(exc).__name__}: {exc} (set ORCH_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
