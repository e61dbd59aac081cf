"""The API-key format and how a key is stored: pure functions, no database.

A key reads ``orch_<key id>_<secret>``::

    orch_3f9c1a7b2d4e_Vb3kq8...Zx (44 characters of secret)

- ``orch_`` makes a leaked key recognisable to people and to secret scanners.
- The key id (12 hex characters, from ``secrets``) is public: it is stored in clear as the row's unique ``prefix``
  (``orch_<key id>``), shown in listings and logs, and used to find the row with one indexed lookup.
- The secret is 44 characters drawn by ``secrets`` from 62 letters and digits: 44 * log2(62) = 262 bits.

Only a hash of the whole key is stored, as ``<salt>$<hex sha256(salt, key)>`` under the scheme ``sha256-salted``.
A fast hash is right here because the input is a random 262-bit secret, not a password: a slow KDF exists to make
guessing low-entropy passwords expensive, and guessing 2**262 values is impossible at any hash speed. A keyed hash
(HMAC with a server secret) would add nothing against that, but would need a second secret present and identical on
every Lambda and every server, and losing or changing it would lock every user out; see docs/security.md.
``hash_scheme`` is stored per row so a future scheme can be introduced while old keys keep working.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

KEY_PREFIX = "orch"
HASH_SCHEME = "sha256-salted"
SECRET_ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 44  # 44 * log2(62) = 262 bits
KEY_ID_BYTES = 6  # 12 hex characters: collisions are refused by the unique index and retried
# Key ids are lower-case letters and digits (the bootstrap key's id is the word "bootstrap"); the secret part is
# letters and digits too, so a key survives double-click selection, shells and URLs unquoted.
_KEY_RE = re.compile(r"^orch_([a-z0-9]{1,32})_([A-Za-z0-9]{32,256})$")


@dataclass(frozen=True)
class ParsedKey:
    key_id: str
    secret: str

    @property
    def prefix(self) -> str:
        """The public part stored in clear (``orch_<key id>``)."""
        return f"{KEY_PREFIX}_{self.key_id}"

    @property
    def full(self) -> str:
        return f"{KEY_PREFIX}_{self.key_id}_{self.secret}"


def generate_key(key_id: str | None = None) -> ParsedKey:
    """A new random key (``key_id`` fixed only for the bootstrap key)."""
    secret = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    return ParsedKey(key_id or secrets.token_hex(KEY_ID_BYTES), secret)


def parse_key(value: str) -> ParsedKey | None:
    """The parts of a well-formed key, or ``None`` for anything else."""
    match = _KEY_RE.match(value.strip())
    if match is None:
        return None
    return ParsedKey(match.group(1), match.group(2))


def public_id(value: str) -> str | None:
    """The key id of something that looks like a key, for logs (never the secret); ``None`` if it does not."""
    parsed = parse_key(value)
    return parsed.prefix if parsed else None


def hash_key(key: ParsedKey, salt: str | None = None) -> str:
    """``<salt>$<hex digest>`` of the full key under ``HASH_SCHEME``."""
    salt = salt if salt is not None else secrets.token_hex(16)
    digest = hashlib.sha256(f"{salt}${key.full}".encode()).hexdigest()
    return f"{salt}${digest}"


def verify_key(key: ParsedKey, stored_hash: str, scheme: str) -> bool:
    """Whether ``key`` matches a stored hash, compared in constant time."""
    if scheme != HASH_SCHEME or "$" not in stored_hash:
        return False
    salt, _, _ = stored_hash.partition("$")
    return hmac.compare_digest(hash_key(key, salt).encode(), stored_hash.encode())


# A hash no key matches, compared against when the key id is unknown so that an unknown id and a wrong secret cost
# the same work (the id is public anyway; this keeps the answer time from telling them apart).
DUMMY_HASH = hash_key(generate_key())


def mask(value: str) -> str:
    """A key as it may be shown after creation: its public id and asterisks."""
    parsed = parse_key(value)
    if parsed is not None:
        return f"{parsed.prefix}_{'*' * 8}"
    return "*" * 8
