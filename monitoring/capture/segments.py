"""Write-ahead segments: the local files a served row is appended to before its response
leaves, one per kind, held under an exclusive ``flock`` by the process writing them.

On the serving machine's local disk (``capture.segments``, even when ``capture.path`` is
on S3)::

    <kind>-<segment>.wal        Arrow IPC record batches, one per model call or feedback
                                request, each framed with its length and CRC (``frames``)
    rejected-<segment>.wal      damaged frames and a torn tail set aside (the bytes as
                                found), never compacted or recovered
    <kind>-<segment>.jsonl      the previous format, JSON lines (``wal``), left by an older
                                version: recovered at start like the others
    rejected-<segment>.jsonl    malformed lines and a torn tail of such a segment
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from pathlib import Path

import pyarrow as pa

from monitoring.capture.frames import BATCH, JSON, MAGIC, SCHEMA, frame, frames_table
from monitoring.capture.schema import KINDS
from monitoring.capture.wal import segment_table

logger = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".wal"
JSON_SUFFIX = ".jsonl"  # segments an older version wrote, read at recovery
SUFFIXES = (SEGMENT_SUFFIX, JSON_SUFFIX)
REJECTED = "rejected"  # malformed segment records, kept in the segments folder (not a kind)


class Segment:
    """One write-ahead file of one kind, framed Arrow record batches, under an exclusive
    ``flock``.

    The lock says "a live process owns this file": the writer holds it from creation until
    the segment's rows are in Parquet and the file is deleted, and a process that dies
    loses it with its file descriptors, which is how recovery tells leftovers from segments
    being written. Each append is one frame (one model call or feedback request; with a
    schema frame before it when its schema is new to the segment) handed to the OS in one
    ``write`` (no fsync): it survives a process crash, not a power cut. A crash inside a
    write leaves a last frame shorter than its header says, from a request that was never
    answered: reading sets it aside. A segment of JSON lines an older version left is read
    by the JSON reader (the file's suffix says which).
    """

    def __init__(self, kind: str, path: Path, fd: int) -> None:
        self.kind = kind
        self.path = path
        self.fd = fd
        self.rows = 0
        self.reserved = 0  # rows counted in the writer's pending total
        self.columns: tuple[str, ...] | None = None  # what its records fill
        self.schema: pa.Schema | None = None  # of the last batch appended

    @property
    def suffix(self) -> str:
        return JSON_SUFFIX if self.path.name.endswith(JSON_SUFFIX) else SEGMENT_SUFFIX

    @property
    def id(self) -> str:
        """The name its Parquet files take: a rerun finds them and writes nothing twice."""
        return self.path.name.removesuffix(self.suffix).split("-", 1)[1]

    @classmethod
    def create(cls, folder: Path, kind: str) -> Segment:
        """A new, locked segment; locked under a hidden name first, so no recovery takes it."""
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{kind}-{uuid.uuid4().hex}{SEGMENT_SUFFIX}"
        hidden = folder / f".{name}.new"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        segment = cls(kind, hidden, fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            segment._write(memoryview(MAGIC))
            os.rename(hidden, folder / name)
        except OSError:  # a full disk: no file is left behind
            segment.remove()
            raise
        segment.path = folder / name
        return segment

    @classmethod
    def claim(cls, path: Path) -> Segment | None:
        """A leftover segment of a process that died, locked; ``None`` if live or gone."""
        kind = path.name.lstrip(".").split("-", 1)[0]
        if kind not in KINDS:
            return None
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(path)  # recovered and deleted meanwhile
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            return None
        return cls(kind, path, fd)

    @staticmethod
    def leftovers(folder: Path) -> list[Segment]:
        """The segments in ``folder`` that dead processes left, claimed; a hidden one that
        was created but never named holds no row and is deleted."""
        claimed = []
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                if path.name.endswith(".new") and (orphan := Segment.claim(path)) is not None:
                    orphan.remove()
                continue
            if path.name.endswith(SUFFIXES) and (found := Segment.claim(path)) is not None:
                claimed.append(found)
        return claimed

    def append(self, columns: tuple[str, ...], record: pa.RecordBatch | bytes, rows: int) -> None:
        """One record batch (or one JSON line) as one frame, in one ``write``; a batch's
        schema frame before it when the schema is new to the segment."""
        if isinstance(record, bytes):
            data = frame(JSON, record)
        else:
            data = frame(BATCH, record.serialize())
            if self.schema is None or not record.schema.equals(self.schema, check_metadata=True):
                data = frame(SCHEMA, record.schema.serialize()) + data
        self.columns = columns
        self._write(memoryview(data))
        if not isinstance(record, bytes):
            self.schema = record.schema
        self.rows += rows

    def _write(self, data: memoryview) -> None:
        while data:  # a short write (a full disk) raises on the next call
            data = data[os.write(self.fd, data) :]

    def read(self, numerical: frozenset[str] = frozenset()) -> pa.Table:
        """Every whole record as one table. A torn last one (a crash mid-append, before the
        response was sent) and damaged ones are left out with a warning and kept beside
        the segment in ``rejected-<id>``, the bytes as found."""
        data = self.path.read_bytes()
        rejected: list[bytes] = []
        if self.suffix == JSON_SUFFIX:
            table, torn = self._read_lines(data, numerical, rejected)
        elif data.startswith(MAGIC):
            table, torn = frames_table(data[len(MAGIC) :], numerical, rejected)
        else:  # not a segment this version or an older one wrote
            table, torn = pa.table({}), 0
            rejected.append(data)
        if torn:
            logger.warning(
                "capture: segment %s ends in a torn write of %d byte(s), from a request "
                "never answered; its whole records are kept",
                self.path,
                torn,
            )
        if rejected:  # kept beside the segments for a look, never compacted or recovered
            kept = self.path.with_name(f"{REJECTED}-{self.id}{self.suffix}")
            end = b"\n" if self.suffix == JSON_SUFFIX else b""
            kept.write_bytes(b"".join(record + end for record in rejected))
            logger.error(
                "capture: %d malformed %s(s) of segment %s left out of the log, kept in %s",
                len(rejected),
                "line" if self.suffix == JSON_SUFFIX else "frame",
                self.path,
                kept,
            )
        return table

    @staticmethod
    def _read_lines(
        data: bytes, numerical: frozenset[str], rejected: list[bytes]
    ) -> tuple[pa.Table, int]:
        """A segment of JSON lines (the previous format): its whole lines, and the bytes
        of a torn last one, set aside."""
        whole = data[: data.rfind(b"\n") + 1]
        torn = len(data) - len(whole)
        table = segment_table(whole, numerical, rejected) if whole else pa.table({})
        if torn:
            rejected.append(data[len(whole) :])
        return table, torn

    def remove(self) -> None:
        """Delete the file, then let go of the lock."""
        self.path.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        os.close(self.fd)
