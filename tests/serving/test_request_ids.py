"""Request ids: unique, of a fixed form, and recognised only by a server with the same token."""

from __future__ import annotations

import re

from serving.request_ids import RequestIds


def test_without_a_token_ids_are_unique_hex_and_all_count_as_issued() -> None:
    ids = RequestIds(None)
    issued = [ids.new() for _ in range(10_000)]
    assert len(set(issued)) == len(issued)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in issued)
    assert not ids.signed
    assert ids.issued("anything a client sends")


def test_with_a_token_ids_are_signed_and_recognised() -> None:
    ids = RequestIds("s3cret")
    issued = [ids.new() for _ in range(1_000)]
    assert len(set(issued)) == len(issued)
    assert all(re.fullmatch(r"[0-9a-f]{48}", i) for i in issued)
    assert ids.signed
    assert all(ids.issued(i) for i in issued)


def test_a_made_up_or_altered_id_is_not_recognised() -> None:
    ids = RequestIds("s3cret")
    request_id = ids.new()
    flipped = request_id[:-1] + ("0" if request_id[-1] != "0" else "1")
    assert not ids.issued(flipped)
    assert not ids.issued(request_id[:32])  # the signature left off
    assert not ids.issued(request_id + "00")
    assert not ids.issued(RequestIds(None).new())
    assert not ids.issued("")


def test_every_server_sharing_the_token_recognises_an_id_and_no_other_does() -> None:
    request_id = RequestIds("s3cret").new()
    assert RequestIds("s3cret").issued(request_id)  # another worker, another replica
    assert not RequestIds("other").issued(request_id)


def test_a_non_ascii_id_is_not_issued_and_raises_nothing() -> None:
    ids = RequestIds("token")
    assert not ids.issued("a" * 32 + "é" * 16)
