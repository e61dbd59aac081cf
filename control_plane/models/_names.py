"""Friendly generated run names ("crimson-otter"), as Prefect users are used to."""

from __future__ import annotations

import secrets

ADJECTIVES = ["amber", "azure", "bold", "brave", "bright", "brisk", "calm", "clever", "cobalt", "cosmic", "crimson", "daring", "deft", "eager", "electric", "emerald", "fancy", "fearless", "fiery", "gentle", "gilded", "glowing", "golden", "grand", "happy", "hidden", "humble", "icy", "jolly", "keen", "kind", "lively", "lucky", "mellow", "merry", "mighty", "misty", "modest", "noble", "nimble", "olive", "onyx", "patient", "placid", "polished", "proud", "quick", "quiet", "rapid", "ruby", "rustic", "scarlet", "serene", "sharp", "shiny", "silent", "silver", "sleek", "smart", "snowy", "solid", "spry", "steady", "stellar", "sunny", "swift", "tidy", "tranquil", "upbeat", "valiant", "vivid", "warm", "wise", "witty", "zealous"]
ANIMALS = ["albatross", "alpaca", "antelope", "badger", "beaver", "bison", "bobcat", "buffalo", "camel", "caracal", "cheetah", "cobra", "condor", "coyote", "crane", "dingo", "dolphin", "dove", "eagle", "eel", "egret", "elk", "falcon", "ferret", "finch", "flamingo", "fox", "gazelle", "gecko", "gibbon", "gopher", "heron", "hippo", "hyena", "ibex", "ibis", "impala", "jackal", "jaguar", "kestrel", "kingfisher", "koala", "lemur", "leopard", "lion", "llama", "lynx", "macaw", "manatee", "marten", "meerkat", "mink", "moose", "narwhal", "newt", "ocelot", "octopus", "okapi", "oriole", "osprey", "otter", "owl", "panda", "panther", "parrot", "pelican", "penguin", "puffin", "quail", "raccoon", "raven", "reindeer", "robin", "salamander", "seal", "shark", "sparrow", "stork", "swan", "tapir", "tiger", "toucan", "turtle", "viper", "walrus", "weasel", "whale", "wolf", "wombat", "yak", "zebra"]


def generate_name() -> str:
    return f"{secrets.choice(ADJECTIVES)}-{secrets.choice(ANIMALS)}"
