"""Flow-run names: the flow's ``flow_run_name`` template, or a random ``adjective-animal`` like Prefect's."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from orch.exceptions import OrchError

if TYPE_CHECKING:
    from orch.flows import Flow

_ADJECTIVES = (
    "amber",
    "brave",
    "calm",
    "daring",
    "eager",
    "fancy",
    "gentle",
    "hasty",
    "icy",
    "jolly",
    "keen",
    "lively",
    "merry",
    "nimble",
    "olive",
    "proud",
    "quick",
    "rapid",
    "silent",
    "tidy",
    "urban",
    "vivid",
    "witty",
    "young",
    "zesty",
)
_ANIMALS = (
    "aardvark",
    "badger",
    "camel",
    "dingo",
    "eagle",
    "ferret",
    "gecko",
    "heron",
    "ibis",
    "jackal",
    "koala",
    "lemur",
    "marmot",
    "newt",
    "otter",
    "panda",
    "quail",
    "raven",
    "salmon",
    "tapir",
    "urchin",
    "viper",
    "walrus",
    "yak",
    "zebra",
)


def run_name(flow: Flow[..., Any], params: dict[str, Any]) -> str:
    """The name of a new run of ``flow`` called with ``params``."""
    template = flow.flow_run_name
    if callable(template):
        return str(template())
    if isinstance(template, str):
        try:
            return template.format(**params)
        except (KeyError, IndexError, ValueError) as exc:
            raise OrchError(f"flow_run_name {template!r} names a parameter the flow does not have: {exc}") from None
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}"
