"""Secrets are masked wherever text leaves the process."""

from __future__ import annotations

import logging

import pytest

from keepalive.scrub import ScrubFilter, mask, register_secret, scrub

TOKEN = "555666777:AAScrubTestTokenValue_0123456789abcdef"


def test_registered_secrets_and_token_shapes_are_masked() -> None:
    register_secret("pa55-word-xyz", None, "", "ab")
    assert scrub("login failed for pa55-word-xyz") == "login failed for ***"
    # Not registered, but shaped like a bot token (say, from a URL in an exception text).
    assert (
        scrub(f"HTTPSConnectionPool: /bot{TOKEN}/sendMessage") == "HTTPSConnectionPool: /bot***/sendMessage"
    )
    assert scrub("ab is too short to be a secret") == "ab is too short to be a secret"


def test_mask_says_set_or_empty_only() -> None:
    assert mask("anything") == "*** (set)"
    assert mask("") == "(empty)"


def test_log_records_and_their_tracebacks_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.scrub")
    logger.addFilter(ScrubFilter())
    try:
        try:
            raise ConnectionError(f"https://api.telegram.org/bot{TOKEN}/sendMessage failed")
        except ConnectionError:
            logger.exception("send failed to %s", f"/bot{TOKEN}/x")
    finally:
        logger.filters.clear()
    text = caplog.text
    assert TOKEN not in text
    assert "send failed to /bot***/x" in text
    assert "ConnectionError" in text
