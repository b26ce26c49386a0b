"""Artifacts as objects in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, R2…), through boto3.

A file is first copied into a private staging file (0600, in ``data_dir/staging``): that copy is what
was hashed and bounded, so the object holds exactly the bytes the row describes. The staging file is
then uploaded by boto3's transfer manager, which sends large files as a multipart upload read part by
part from disk (memory stays bounded) and aborts the upload when it fails. Each request carries the
SDK's integrity checksum, and the object keeps the SHA-256 as ``x-amz-meta-sha256``. Reads and
downloads stream the response body; nothing holds a whole object in memory.

boto3 is synchronous: it is called from worker threads. Its client is made on first use, so a store
that cannot be reached is reported by the first upload or read, not at start; errors name the bucket
and key, never the credentials.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from testgate.config import ArtifactSettings
from testgate.errors import StorageUnavailable
from testgate.platform.artifact_store import Missing, ObjectStream, Writer

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

CHUNK = 1024 * 1024
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_FAILURES = (BotoCoreError, ClientError, S3UploadFailedError)
# Parts of 8 MiB, four at a time: at most a few parts in flight per upload.
_TRANSFER = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024, max_concurrency=4)


class S3Store:
    """The S3 store: objects ``<prefix>/<execution id>/<path>`` in one bucket."""

    def __init__(self, settings: ArtifactSettings, *, staging: Path) -> None:
        assert settings.s3_bucket is not None  # the settings refuse store=s3 without one
        self.settings = settings
        self.bucket = settings.s3_bucket
        self.staging = staging
        self._client: S3Client | None = None
        self._lock = threading.Lock()

    def object_key(self, key: str) -> str:
        prefix = self.settings.s3_prefix
        return f"{prefix}/{key}" if prefix else key

    def client(self) -> S3Client:
        """The boto3 client, made once (clients are thread-safe; making one is not)."""
        with self._lock:
            if self._client is None:
                self._client = make_client(self.settings)
            return self._client

    @contextmanager
    def writer(self, key: str) -> Iterator[Writer]:
        self.staging.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=self.staging, prefix="artifact-") as spool:
            yield _Upload(self, spool, self.object_key(key))

    def put(self, filename: str, object_key: str, sha256: str) -> None:
        """Upload a staged file (multipart when large); ``StorageUnavailable`` when it fails."""
        extra = {"Metadata": {"sha256": sha256}}
        try:
            self.client().upload_file(filename, self.bucket, object_key, ExtraArgs=extra, Config=_TRANSFER)
        except _FAILURES as exc:
            raise StorageUnavailable(f"upload to {self._where(object_key)} failed: {reason(exc)}") from None

    @contextmanager
    def reader(self, key: str) -> Iterator[BinaryIO]:
        where = self._where(self.object_key(key))
        body, _ = self._get(key)
        with io.BufferedReader(_Body(body, where)) as stream:
            yield stream

    async def download(self, key: str) -> ObjectStream:
        body, size = await asyncio.to_thread(self._get, key)
        return ObjectStream(size, _chunks(body, self._where(self.object_key(key))))

    def _get(self, key: str) -> tuple[StreamingBody, int]:
        object_key = self.object_key(key)
        try:
            answer = self.client().get_object(Bucket=self.bucket, Key=object_key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise Missing("is missing from storage") from None
            raise StorageUnavailable(f"reading {self._where(object_key)} failed: {reason(exc)}") from None
        except BotoCoreError as exc:
            raise StorageUnavailable(f"reading {self._where(object_key)} failed: {reason(exc)}") from None
        return answer["Body"], answer["ContentLength"]

    def _where(self, object_key: str) -> str:
        return f"s3://{self.bucket}/{object_key}"


class _Upload:
    """A writer into the staging file; committing uploads it."""

    def __init__(self, store: S3Store, spool: IO[bytes], object_key: str) -> None:
        self.store = store
        self.spool = spool
        self.object_key = object_key

    def write(self, data: bytes, /) -> int:
        return self.spool.write(data)

    def commit(self, sha256: str) -> None:
        self.spool.flush()
        self.store.put(self.spool.name, self.object_key, sha256)


class _Body(io.RawIOBase):
    """A response body as a raw stream, so ``io`` can buffer and decode it; transport errors become domain ones."""

    def __init__(self, body: StreamingBody, where: str) -> None:
        self.body = body
        self.where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self.body.read(len(view))
        except BotoCoreError as exc:
            raise StorageUnavailable(f"reading {self.where} failed: {reason(exc)}") from None
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.body.close()
        super().close()


async def _chunks(body: StreamingBody, where: str) -> AsyncIterator[bytes]:
    """The body a chunk at a time, each read in a thread; closed however the iteration ends."""
    try:
        while True:
            try:
                chunk = await asyncio.to_thread(body.read, CHUNK)
            except BotoCoreError as exc:
                raise StorageUnavailable(f"reading {where} failed: {reason(exc)}") from None
            if not chunk:
                return
            yield chunk
    finally:
        body.close()


def make_client(settings: ArtifactSettings) -> S3Client:
    """A client of its own session, so these credentials never become boto3's process-wide default."""
    key_id, secret = settings.s3_access_key_id, settings.s3_secret_access_key
    session = boto3.session.Session(
        aws_access_key_id=key_id.get_secret_value() if key_id else None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        region_name=settings.s3_region,
    )
    config = Config(
        s3={"addressing_style": settings.s3_addressing_style},
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=60,
    )
    verify = str(settings.s3_ca_bundle) if settings.s3_ca_bundle else None
    return session.client("s3", endpoint_url=settings.s3_endpoint_url, verify=verify, config=config)


def reason(exc: BaseException) -> str:
    """What went wrong, in the service's words (``NoSuchBucket: …``) or the SDK's; never a credential."""
    inner = exc.__context__ if isinstance(exc, S3UploadFailedError) and exc.__context__ else exc
    if isinstance(inner, ClientError):
        error = inner.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', 'no message')}"
    return str(inner) or type(inner).__name__
