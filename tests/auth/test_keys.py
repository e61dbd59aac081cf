"""The key format, hashing and the failure limiter: pure functions, no database."""

from __future__ import annotations

import math

import pytest

from orch.control_plane.auth import keys
from orch.control_plane.auth.ratelimit import FailureLimiter

pytestmark = pytest.mark.unit


def test_generated_keys_are_recognisable_and_carry_at_least_256_bits() -> None:
    key = keys.generate_key()
    assert key.full.startswith("orch_")
    assert keys.parse_key(key.full) == key
    assert key.prefix == f"orch_{key.key_id}" and key.secret not in key.prefix
    assert len(key.secret) * math.log2(len(keys.SECRET_ALPHABET)) >= 256
    assert len({keys.generate_key().full for _ in range(200)}) == 200


@pytest.mark.parametrize(
    "value",
    [
        "",
        "orch_",
        "orch_abc",
        "orch_abc_short",
        "ORCH_abc_" + "a" * 44,
        "orch_ABC_" + "a" * 44,
        "orch_abc_" + "a" * 43 + "!",
        "orch_abc_" + "a" * 300,
        "orch_abc_" + "a" * 44 + "\n_x",
        "Bearer orch_abc_" + "a" * 44,
        "x" * 60,
        "' OR 1=1 --",
    ],
)
def test_malformed_keys_do_not_parse(value: str) -> None:
    assert keys.parse_key(value) is None
    assert keys.public_id(value) is None


def test_only_the_right_key_matches_its_salted_hash() -> None:
    key = keys.generate_key()
    stored = keys.hash_key(key)
    assert key.secret not in stored and key.full not in stored
    assert keys.verify_key(key, stored, keys.HASH_SCHEME)
    other_secret = keys.ParsedKey(key.key_id, keys.generate_key().secret)
    assert not keys.verify_key(other_secret, stored, keys.HASH_SCHEME)
    assert not keys.verify_key(key, stored, "plaintext")
    assert not keys.verify_key(key, "no-salt", keys.HASH_SCHEME)
    # Salted: the same key hashes differently each time it is stored.
    assert keys.hash_key(key) != stored
    assert not keys.verify_key(key, keys.DUMMY_HASH, keys.HASH_SCHEME)


def test_mask_shows_the_public_id_only() -> None:
    key = keys.generate_key()
    assert keys.mask(key.full) == f"{key.prefix}_********"
    assert key.secret not in keys.mask(key.full)
    assert keys.mask("not-a-key-but-secret") == "********"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_blocks_an_address_after_the_limit_until_the_window_passes() -> None:
    clock = FakeClock()
    limiter = FailureLimiter(3, 60.0, clock=clock)
    for _ in range(2):
        limiter.record_failure("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") is None
    clock.now += 10
    limiter.record_failure("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 50  # the first failure leaves the window at t+60
    assert limiter.retry_after("10.0.0.2") is None  # per address
    clock.now += 50
    assert limiter.retry_after("10.0.0.1") is None
    clock.now += 100
    assert limiter.retry_after("10.0.0.1") is None


def test_limiter_memory_is_bounded() -> None:
    limiter = FailureLimiter(2, 60.0, max_addresses=10, clock=FakeClock())
    for i in range(100):
        limiter.record_failure(f"10.0.{i}.1")
        limiter.record_failure(f"10.0.{i}.1")
    assert len(limiter._failures) == 10
    assert limiter.retry_after("10.0.99.1") is not None
    assert limiter.retry_after("10.0.0.1") is None  # the stalest were forgotten
