"""``orch build lambda``: the control plane's Lambda deployment zip."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Build artefacts for AWS.", no_args_is_help=True)


@app.command("lambda")
def build_lambda(
    out: Path = typer.Option(Path("dist"), "--out", help="Output folder (gets lambda/ and orch-lambda.zip)."),
    python_version: str = typer.Option("3.12", "--python", help="The Lambda runtime's Python version."),
    arch: str = typer.Option("arm64", "--arch", help="arm64 (Graviton, the stacks' default) or x86_64."),
) -> None:
    """Build the zip from manylinux wheels for the Lambda runtime, with precompiled bytecode; fails above 250 MB."""
    from orch.control_plane.lambda_build import LambdaBuildError, build_lambda
    from orch.exceptions import InvalidInput

    platforms = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
    if arch not in platforms:
        raise InvalidInput(f"Unknown architecture {arch!r}: use arm64 or x86_64.")
    try:
        report = build_lambda(
            out, python_version=python_version, platform=platforms[arch], progress=lambda m: typer.echo(m, err=True)
        )
    except LambdaBuildError as exc:
        raise InvalidInput(str(exc)) from None
    typer.echo(
        f"{report.zip_path}: {report.zipped_bytes / 1e6:.1f} MB zipped, {report.unzipped_bytes / 1e6:.1f} MB unzipped, "
        f"{report.files} files"
    )
