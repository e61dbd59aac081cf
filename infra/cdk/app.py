#!/usr/bin/env python3
"""Entry point of orch's CDK app: `python infra/cdk/app.py [-c key=value ...] [-o OUTDIR]` or `cdk deploy`.

It reads the context (see `orch_cdk.config` for every key and docs/aws.md for what they cost), finds the Lambda
package from `orch build lambda`, builds the `OrchControlPlane` stack, runs the cdk-nag AwsSolutions checks on it
(`-c nag=false` skips them) and synthesizes with plain `app.synth()`: no cdk CLI, no Docker, no AWS call.

Without a Lambda package it still synthesizes, prints a warning and marks the stack with an error, so the cdk CLI
refuses to deploy functions that have no code. Bad context or a bad `lambda_asset` path: one line on stderr,
exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
if str(HERE) not in sys.path:  # `python infra/cdk/app.py` from anywhere finds the orch_cdk package
    sys.path.insert(0, str(HERE))

import aws_cdk as cdk  # noqa: E402
from aws_cdk import aws_lambda as lambda_  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402
from orch_cdk.config import ConfigError, StackConfig  # noqa: E402
from orch_cdk.lambda_asset import AssetError, LambdaAsset, resolve_lambda_asset  # noqa: E402
from orch_cdk.stack import STACK_NAME, OrchControlPlaneStack  # noqa: E402

NOT_BUILT_MESSAGE = (
    "no Lambda package from `orch build lambda` (dist/orch-lambda.zip or -c lambda_asset=PATH): the functions "
    "point at a NOT_BUILT placeholder; run `orch build lambda` before `cdk deploy`"
)


@dataclass
class Built:
    """What `build_app` made: the app, the stack and where the Lambda code came from."""

    app: cdk.App
    stack: OrchControlPlaneStack
    asset: LambdaAsset


def stack_name(config: StackConfig) -> str:
    """`OrchControlPlane` for the default prefix, `OrchControlPlane-<prefix>` otherwise (several per account)."""
    return STACK_NAME if config.prefix == "orch" else f"{STACK_NAME}-{config.prefix}"


def build_app(
    context: Mapping[str, Any] | None = None, outdir: str | None = None, *, asset: LambdaAsset | None = None
) -> Built:
    """Build (not synthesize) the app; raises ConfigError or AssetError on bad input.

    `asset` bypasses the lookup of the `orch build lambda` package; tests pass a folder of their own.
    """
    app = cdk.App(context=dict(context or {}), outdir=outdir)
    config = StackConfig.from_context(app.node.try_get_context)
    if asset is None:
        asset = resolve_lambda_asset(app.node.try_get_context("lambda_asset"), REPO_ROOT)
    stack = OrchControlPlaneStack(app, stack_name(config), config=config, code=lambda_.Code.from_asset(str(asset.path)))
    if not asset.built:
        cdk.Annotations.of(stack).add_error(NOT_BUILT_MESSAGE)
    nag = app.node.try_get_context("nag")
    if nag is None or str(nag).lower() not in ("0", "false", "no", "off"):
        cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return Built(app, stack, asset)


def _parse_context(pairs: Sequence[str]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"-c {pair!r}: expected key=value")
        context[key] = value
    return context


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "-o", "--output", default=None, metavar="OUTDIR", help="cloud assembly folder (default: infra/cdk/cdk.out)"
    )
    args = parser.parse_args(argv)
    try:
        # The cdk CLI hands its context (cdk.json, -c) over in CDK_CONTEXT_JSON; App reads that itself, and the
        # keys given here on the command line win over it.
        context = _parse_context(args.context)
        if "CDK_CONTEXT_JSON" in os.environ:
            context = {**json.loads(os.environ["CDK_CONTEXT_JSON"]), **context}
        # The cdk CLI names the output folder in CDK_OUTDIR; a plain run writes next to this file.
        outdir = args.output or os.environ.get("CDK_OUTDIR") or str(HERE / "cdk.out")
        built = build_app(context, outdir)
    except (ConfigError, AssetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not built.asset.built:
        print(f"WARNING: {NOT_BUILT_MESSAGE}", file=sys.stderr)
    assembly = built.app.synth()
    print(f"synthesized {built.stack.stack_name} into {assembly.directory}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
