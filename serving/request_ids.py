"""Request ids: one per served row, joined later to its feedback label.

Without a feedback token an id is a random 32-character hex string. With one, the id
carries a 16-character HMAC of itself, keyed by a key derived from the token, so that
``/feedback`` can tell the ids this service issued from made-up ones: every worker and
replica that shares the token checks an id alone, without shared state.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

ID_CHARS = 32  # uuid4().hex
SIGNATURE_CHARS = 16


class RequestIds:
    """Issues request ids and, with a feedback token, recognises the ones it issued."""

    def __init__(self, feedback_token: str | None) -> None:
        self._key = (
            hashlib.sha256(b"mlstack request ids\0" + feedback_token.encode()).digest()
            if feedback_token
            else None
        )

    @property
    def signed(self) -> bool:
        return self._key is not None

    def new(self) -> str:
        """A fresh id; with a feedback token, signed, so /feedback can tell ids it issued."""
        request_id = uuid.uuid4().hex
        return request_id if self._key is None else request_id + self._signature(request_id)

    def issued(self, request_id: str) -> bool:
        """Whether a server with this token answered ``request_id`` (always true without one)."""
        if self._key is None:
            return True
        unsigned, signature = request_id[:ID_CHARS], request_id[ID_CHARS:]
        return (
            len(request_id) == ID_CHARS + SIGNATURE_CHARS
            and request_id.isascii()
            and hmac.compare_digest(signature.encode(), self._signature(unsigned).encode())
        )

    def _signature(self, request_id: str) -> str:
        assert self._key is not None
        digest = hmac.new(self._key, request_id.encode(), hashlib.sha256).hexdigest()
        return digest[:SIGNATURE_CHARS]
