"""Storage for code bundles: content-addressed zips in a folder or an S3 prefix.

``orch deploy`` packs the project folder into a zip named by the sha256 of its content (see
:mod:`orch.deployments.bundle`) and puts it here unless that hash is already stored; the engine fetches it back by
the reference the deployment records::

    {"sha256": "3f2a...", "storage": "s3://bucket/prefix", "key": "bundle-3f2a....zip", "size": 1234}

This is the same storage results use (:mod:`orch.results`: a folder, default ``$ORCH_HOME/storage``, or
``s3://bucket/prefix`` with boto3 created on first use, honouring ``AWS_ENDPOINT_URL``); bundles are objects named
``bundle-<sha256>.zip`` in it, so one bucket serves both. ::

    storage = BundleStorage("s3://my-bucket/orch")
    ref = storage.put_bundle(Path("bundle.zip"))       # uploads unless storage.has(ref.sha256)
    fetch_bundle(ref.to_json(), Path("/tmp/run-123"))  # what the engine does before importing the entrypoint
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from orch.exceptions import ConfigurationError, OrchError
from orch.results import LocalResultStorage, ResultStorage, S3ResultStorage, resolve_storage

__all__ = ["BundleRef", "BundleStorage", "content_digest", "fetch_bundle"]

BUNDLE_KEY_PREFIX = "bundle-"
# Marker written into an unpacked bundle folder: a second fetch of the same hash into it is a no-op.
UNPACKED_MARKER = ".orch-bundle"


@dataclasses.dataclass(frozen=True)
class BundleRef:
    """Where a bundle is; ``uploaded`` tells whether this call stored it (False: the hash was there already)."""

    sha256: str
    storage: str
    key: str
    size: int
    uploaded: bool = False

    def to_json(self) -> dict[str, Any]:
        """The ``code_bundle`` a deployment records (the API's ``CodeBundle``)."""
        return {"sha256": self.sha256, "storage": self.storage, "key": self.key, "size": self.size}


def bundle_key(sha256: str) -> str:
    return f"{BUNDLE_KEY_PREFIX}{sha256}.zip"


class BundleStorage:
    """Code bundles in a result storage: a folder path, ``file://`` URL or ``s3://bucket/prefix`` (None: default)."""

    def __init__(self, url: str | os.PathLike[str] | None = None) -> None:
        if url is None:
            from orch.settings import get_settings

            # ORCH_STORAGE_URL (e.g. saved by `orch stack outputs --save`) names the bundle bucket; else results'.
            url = get_settings().storage_url
        try:
            self.backend: ResultStorage = resolve_storage(url)
        except ValueError as exc:
            raise ConfigurationError(str(exc).replace("result_storage", "storage")) from None
        self.url = self.backend.url

    def has(self, sha256: str) -> bool:
        """Whether the bundle with this content hash is stored already."""
        return _exists(self.backend, bundle_key(sha256))

    def put_bundle(self, path: str | os.PathLike[str], sha256: str | None = None) -> BundleRef:
        """Store the zip at ``path`` under its content hash, unless a bundle with that hash is there already.

        ``sha256`` is the bundle's content digest when the caller knows it (``orch.deployments.bundle`` does);
        otherwise it is computed from the zip's entries.
        """
        data = Path(path).read_bytes()
        digest = sha256 or content_digest(data)
        key = bundle_key(digest)
        uploaded = False
        if not self.has(digest):
            self.backend.write(key, data)
            uploaded = True
        return BundleRef(digest, self.url, key, len(data), uploaded)

    def read_bundle(self, sha256: str) -> bytes | None:
        return self.backend.read(bundle_key(sha256))


class BundleError(OrchError):
    """A bundle is missing from its storage or does not match its hash."""


def fetch_bundle(ref: dict[str, Any], dest: str | os.PathLike[str]) -> Path:
    """Download the bundle ``ref`` (a deployment's ``code_bundle``) and unpack it into ``dest``; returns ``dest``.

    The content is checked against ``ref["sha256"]`` before anything is written. Fetching the same hash into the
    same folder again does nothing. The engine then imports the deployment's ``entrypoint`` relative to ``dest``.
    """
    target = Path(dest)
    sha256 = str(ref["sha256"])
    marker = target / UNPACKED_MARKER
    if marker.is_file() and marker.read_text().strip() == sha256:
        return target
    storage = BundleStorage(str(ref["storage"]))
    data = storage.backend.read(str(ref.get("key") or bundle_key(sha256)))
    if data is None:
        raise BundleError(f"Code bundle {sha256} is not in {storage.url}.")
    try:
        actual = content_digest(data)
    except zipfile.BadZipFile:
        actual = None
    if actual != sha256:
        raise BundleError(f"Code bundle {sha256} in {storage.url} does not match its hash; refusing to use it.")
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            relative = _safe_member(info.filename)
            out = target.joinpath(*relative.parts)
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(archive.read(info))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                out.chmod(mode)
    marker.write_text(sha256)
    return target


def _safe_member(name: str) -> PurePosixPath:
    """A zip member name as a relative path inside the destination (never absolute, never ``..``)."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise BundleError(f"Code bundle member {name!r} would escape the destination folder.")
    return path


def content_digest(zip_bytes: bytes) -> str:
    """The content hash of a bundle: sha256 over each file's path, mode and sha256, in path order.

    It names the content, not the zip's bytes, so it does not depend on the compressor's version.
    """
    digest = hashlib.sha256()
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        entries = sorted((i for i in archive.infolist() if not i.is_dir()), key=lambda i: i.filename)
        for info in entries:
            mode = (info.external_attr >> 16) & 0o777
            digest.update(manifest_line(info.filename, mode, hashlib.sha256(archive.read(info)).hexdigest()))
    return digest.hexdigest()


def manifest_line(path: str, mode: int, file_sha256: str) -> bytes:
    return f"{path}\0{mode:o}\0{file_sha256}\n".encode()


def _exists(storage: ResultStorage, key: str) -> bool:
    exists = getattr(storage, "exists", None)
    if callable(exists):
        return bool(exists(key))
    if isinstance(storage, LocalResultStorage):
        return (storage.path / key).is_file()
    if isinstance(storage, S3ResultStorage):
        # A HEAD request: the bundle itself may be large. (ResultStorage has no exists() yet; see the module doc.)
        client = storage._s3()
        full_key = f"{storage.prefix}/{key}" if storage.prefix else key
        try:
            client.head_object(Bucket=storage.bucket, Key=full_key)
            return True
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
    return storage.read(key) is not None
