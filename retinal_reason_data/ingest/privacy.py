"""Keyed pseudonyms for patient identifiers; the key comes from the environment and is never stored."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os

log = logging.getLogger(__name__)

# Public, so that demo and test builds are reproducible; real releases set their own key.
DEVELOPMENT_KEY = b"retinal-reason-data development key: set your own for a release"


def pseudonym_key(env_name: str) -> tuple[bytes, bool]:
    """The key from `env_name`, or the public development key (second value True) when it is unset."""
    value = os.environ.get(env_name)
    if value:
        return value.encode(), False
    log.warning("%s is not set: patient pseudonyms use the public development key", env_name)
    return DEVELOPMENT_KEY, True


def pseudonymise(source: str, raw_patient_id: str, key: bytes) -> str:
    """A stable pseudonym of one source's patient id: HMAC-SHA256, so it cannot be reversed without the key."""
    digest = hmac.new(key, f"{source}\x1f{raw_patient_id}".encode(), hashlib.sha256).hexdigest()
    return f"p-{digest[:20]}"
