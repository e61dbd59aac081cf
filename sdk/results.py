"""Results: kept in memory within a run, persisted to storage when asked, and looked up again for caching.

A persisted result is one object in a *result storage*: a local folder (default ``$ORCH_HOME/storage``) or an S3
prefix (``result_storage="s3://bucket/prefix"``; boto3 is imported on first use). The object holds a one-line JSON
header (serializer, cache expiration) followed by the serialized value, so a cache hit can be judged without
knowing how the result was written. The recorded state's ``data`` holds only a reference::

    {"storage": "file:///home/me/.orch/storage", "key": "3f2a...", "serializer": "json"}

Caching across runs and processes is a lookup of the cache key in the storage: the cache key *is* the storage key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from orch.serializers import get_serializer

__all__ = [
    "LocalResultStorage",
    "ResultOptions",
    "ResultStorage",
    "S3ResultStorage",
    "load_reference",
    "resolve_storage",
]


class ResultStorage(Protocol):
    """Where persisted results live; ``url`` names it in result references."""

    url: str

    def write(self, key: str, data: bytes) -> None: ...

    def read(self, key: str) -> bytes | None: ...


class LocalResultStorage:
    """A folder; writes are atomic (temporary file + rename) so concurrent processes never read half a result."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().resolve()
        self.url = self.path.as_uri()

    def _file(self, key: str) -> Path:
        if "/" in key or "\\" in key or key.startswith("."):
            # Keys are hashes or run ids; anything else could escape the folder.
            key = hashlib.sha256(key.encode()).hexdigest()
        return self.path / key

    def write(self, key: str, data: bytes) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self._file(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, key: str) -> bytes | None:
        try:
            return self._file(key).read_bytes()
        except FileNotFoundError:
            return None


class S3ResultStorage:
    """An S3 bucket and prefix; the boto3 client is created on first use and shared by threads."""

    def __init__(self, bucket: str, prefix: str = "") -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Travels to worker processes without its client and lock; the worker makes its own.
        return {"bucket": self.bucket, "prefix": self.prefix, "url": self.url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client = None
        self._lock = threading.Lock()

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3

                self._client = boto3.client("s3")
            return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def write(self, key: str, data: bytes) -> None:
        self._s3().put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def read(self, key: str) -> bytes | None:
        client = self._s3()
        try:
            return bytes(client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())
        except client.exceptions.NoSuchKey:
            return None


_storages: dict[str, ResultStorage] = {}
_storages_lock = threading.Lock()


def resolve_storage(spec: str | os.PathLike[str] | ResultStorage | None) -> ResultStorage:
    """A storage from ``s3://bucket/prefix``, a folder path, ``file://`` URL, an object, or ``None`` (the default)."""
    if spec is not None and not isinstance(spec, str | os.PathLike):
        return spec
    if spec is None:
        from orch.settings import get_settings

        settings = get_settings()
        spec = settings.default_result_storage or str(settings.storage_dir)
    text = os.fspath(spec)
    with _storages_lock:
        storage = _storages.get(text)
        if storage is None:
            if text.startswith("s3://"):
                bucket, _, prefix = text[5:].partition("/")
                if not bucket:
                    raise ValueError(f"result_storage {text!r} names no bucket; use s3://bucket/prefix.")
                storage = S3ResultStorage(bucket, prefix)
            elif text.startswith("file://"):
                storage = LocalResultStorage(text[7:])
            elif "://" in text:
                raise ValueError(f"result_storage {text!r}: only folders and s3://bucket/prefix are supported.")
            else:
                storage = LocalResultStorage(text)
            _storages[text] = storage
        return storage


def validate_storage_spec(spec: object) -> None:
    """Refuse a ``result_storage`` that can never work, at decoration time."""
    if spec is None or hasattr(spec, "write"):
        return
    if not isinstance(spec, str | os.PathLike):
        raise TypeError(f"result_storage must be a folder, 's3://bucket/prefix' or a storage object, not {spec!r}.")
    text = os.fspath(spec)
    if "://" in text and not text.startswith(("s3://", "file://")):
        raise ValueError(f"result_storage {text!r}: only folders and s3://bucket/prefix are supported.")
    if text.startswith("s3://") and not text[5:].partition("/")[0]:
        raise ValueError(f"result_storage {text!r} names no bucket; use s3://bucket/prefix.")


@dataclasses.dataclass(frozen=True, slots=True)
class ResultOptions:
    """How a run persists its result: ``persist`` ``None`` means "only when caching needs it"."""

    persist: bool | None = None
    storage: str | os.PathLike[str] | ResultStorage | None = None
    serializer: str = "cloudpickle"

    def merged(self, persist: bool | None, storage: Any, serializer: str | None) -> ResultOptions:
        """These options overridden by the ones a task sets (tasks inherit their flow's)."""
        if persist is None and storage is None and serializer is None:
            return self
        return ResultOptions(
            self.persist if persist is None else persist,
            self.storage if storage is None else storage,
            serializer or self.serializer,
        )


def persist(options: ResultOptions, key: str, value: Any, expiration: dt.datetime | None = None) -> dict[str, Any]:
    """Write ``value`` under ``key`` and return the reference recorded in the state's ``data``."""
    storage = resolve_storage(options.storage)
    serializer = get_serializer(options.serializer)
    header = {"serializer": serializer.name, "expiration": expiration.isoformat() if expiration else None}
    storage.write(key, json.dumps(header).encode() + b"\n" + serializer.dumps(value))
    return {"storage": storage.url, "key": key, "serializer": serializer.name}


def _decode(blob: bytes) -> tuple[dict[str, Any], Any]:
    head, _, payload = blob.partition(b"\n")
    header = json.loads(head)
    return header, get_serializer(header["serializer"]).loads(payload)


def lookup(options: ResultOptions, key: str) -> tuple[bool, Any, dict[str, Any] | None]:
    """``(found, value, reference)`` for a cached result that exists and has not expired."""
    storage = resolve_storage(options.storage)
    blob = storage.read(key)
    if blob is None:
        return False, None, None
    header, value = _decode(blob)
    expiration = header.get("expiration")
    if expiration is not None and dt.datetime.fromisoformat(expiration).timestamp() <= time.time():
        return False, None, None
    return True, value, {"storage": storage.url, "key": key, "serializer": header["serializer"]}


def load_reference(ref: dict[str, Any]) -> Any:
    """The value a recorded reference points at (used by ``State.result()`` on states read from the server)."""
    blob = resolve_storage(ref["storage"]).read(ref["key"])
    if blob is None:
        raise LookupError(f"The persisted result {ref['key']!r} is missing from {ref['storage']}.")
    return _decode(blob)[1]
