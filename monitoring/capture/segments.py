"""Write-ahead segments: the local files a served row is appended to before its response
leaves, one per kind, held under an exclusive ``flock`` by the process writing them.

On the serving machine's local disk (``capture.segments``, even when ``capture.path`` is
on S3)::

    <kind>-<segment>.jsonl      JSON lines, one per model call or feedback request
    rejected-<segment>.jsonl    malformed lines set aside, never compacted or recovered
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from pathlib import Path

import pyarrow as pa

from monitoring.capture.schema import KINDS
from monitoring.capture.wal import segment_table

logger = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".jsonl"
REJECTED = "rejected"  # malformed segment lines, kept in the segments folder (not a kind)


class Segment:
    """One write-ahead file of one kind, JSON lines, under an exclusive ``flock``.

    The lock says "a live process owns this file": the writer holds it from creation until
    the segment's rows are in Parquet and the file is deleted, and a process that dies
    loses it with its file descriptors, which is how recovery tells leftovers from segments
    being written. Each append is one line (one model call or feedback request) handed to
    the OS in one ``write`` (no fsync): it survives a process crash, not a power cut. A
    crash inside a write leaves a last line without its newline, from a request that was
    never answered: reading leaves it out.
    """

    def __init__(self, kind: str, path: Path, fd: int) -> None:
        self.kind = kind
        self.path = path
        self.fd = fd
        self.rows = 0
        self.reserved = 0  # rows counted in the writer's pending total
        self.columns: tuple[str, ...] | None = None  # what its lines fill

    @property
    def id(self) -> str:
        """The name its Parquet files take: a rerun finds them and writes nothing twice."""
        return self.path.name.removesuffix(SEGMENT_SUFFIX).split("-", 1)[1]

    @classmethod
    def create(cls, folder: Path, kind: str) -> Segment:
        """A new, locked segment; locked under a hidden name first, so no recovery takes it."""
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{kind}-{uuid.uuid4().hex}{SEGMENT_SUFFIX}"
        hidden = folder / f".{name}.new"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(hidden, folder / name)
        return cls(kind, folder / name, fd)

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
            if path.name.endswith(SEGMENT_SUFFIX) and (found := Segment.claim(path)) is not None:
                claimed.append(found)
        return claimed

    def append(self, columns: tuple[str, ...], line: bytes, rows: int) -> None:
        self.columns = columns
        self._write(memoryview(line))
        self.rows += rows

    def _write(self, data: memoryview) -> None:
        while data:  # a short write (a full disk) raises on the next call
            data = data[os.write(self.fd, data) :]

    def read(self, numerical: frozenset[str] = frozenset()) -> pa.Table:
        """Every whole line as one table; a torn last one (a crash mid-append, before the
        response was sent) is left out with a warning."""
        data = self.path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) < len(data):
            logger.warning(
                "capture: segment %s ends in a torn write of %d byte(s), from a request "
                "never answered; its whole lines are kept",
                self.path,
                len(data) - len(whole),
            )
        if not whole:
            return pa.table({})
        rejected: list[bytes] = []
        table = segment_table(whole, numerical, rejected)
        if rejected:  # kept beside the segments for a look, never compacted or recovered
            kept = self.path.with_name(f"{REJECTED}-{self.id}{SEGMENT_SUFFIX}")
            kept.write_bytes(b"".join(line + b"\n" for line in rejected))
            logger.error(
                "capture: %d malformed line(s) of segment %s left out of the log, kept in %s",
                len(rejected),
                self.path,
                kept,
            )
        return table

    def remove(self) -> None:
        """Delete the file, then let go of the lock."""
        self.path.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        os.close(self.fd)
