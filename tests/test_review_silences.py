"""Bounds on what silences may cost the event loop (the snapshot matches every target against
every active silence's globs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepalive.policy.silences import MAX_BOOK_GLOBS, SilenceBook, SilenceError, read_request


def test_the_active_silences_hold_at_most_max_book_globs(tmp_path: Path) -> None:
    book = SilenceBook(tmp_path, max_silence=86400.0, clock=lambda: 1_767_225_600.0)
    per_silence = 100
    for i in range(MAX_BOOK_GLOBS // per_silence):
        book.create([f"s{i}-{j}-*" for j in range(per_silence)], "1h", "bulk")
    with pytest.raises(SilenceError) as caught:
        book.create(["one-more-*"], "1h", "bulk")
    assert str(caught.value) == (
        f"the active silences would hold {MAX_BOOK_GLOBS + 1} globs: at most {MAX_BOOK_GLOBS}; "
        "use fewer, wider globs (db-*) or remove some silences first"
    )
    assert len(book.all()) == MAX_BOOK_GLOBS // per_silence
    # The book's one pattern (what the snapshot matches with) is built with the book, on write
    # and on load, and agrees with the silences one by one.
    again = SilenceBook(tmp_path, max_silence=86400.0, clock=lambda: 1_767_225_600.0)
    for candidate in ("s3-7-x", "S9-99-db", "s10-0-x", "one-more-x"):
        expected = any(s.covers(candidate) for s in book.all())
        assert (book.union is not None and book.union.fullmatch(candidate) is not None) is expected
        assert (again.union is not None and again.union.fullmatch(candidate) is not None) is expected


def test_an_absurd_duration_is_refused_in_a_short_line() -> None:
    with pytest.raises(SilenceError) as caught:
        read_request({"targets": "db-*", "duration": 1e300}, 1_767_225_600.0, 7 * 86400.0)
    assert str(caught.value) == (
        "the silence would last more than 100 years: at most MAX_SILENCE=7d "
        "(a longer quiet is a maintenance window)"
    )
