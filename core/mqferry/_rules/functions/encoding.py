"""Base64 encoding and hashing (hex digests, lower-case)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import Any

from mqferry._rules.functions._args import BadArg, as_bytes, as_text

__all__ = ["FUNCTIONS"]


def _options(opts: tuple[Any, ...]) -> tuple[bool, bool]:
    urlsafe = padding = False
    for opt in opts:
        name = as_text(opt)
        urlsafe = urlsafe or name == "urlsafe"
        padding = padding or name == "no_padding"
    return urlsafe, not padding


def base64_encode(data: Any, *opts: Any) -> str:
    """Base64 of a binary; options ``'urlsafe'`` and ``'no_padding'``."""
    urlsafe, padding = _options(opts)
    raw = as_bytes(data)
    out = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
    text = out.decode("ascii")
    return text if padding else text.rstrip("=")


def base64_decode(data: Any, *opts: Any) -> bytes | str:
    """Decode base64 (padding required unless ``'no_padding'``; ``'urlsafe'`` alphabet).

    The result is a string when it is valid UTF-8, otherwise bytes.
    """
    urlsafe, padding = _options(opts)
    text = as_text(data)
    if not padding:
        text += "=" * (-len(text) % 4)
    try:
        raw = (base64.urlsafe_b64decode(text) if urlsafe
               else base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise BadArg(f"invalid base64: {exc}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


_ALGORITHMS = {
    "md5": "md5", "sha": "sha1", "sha1": "sha1", "sha224": "sha224", "sha256": "sha256",
    "sha384": "sha384", "sha512": "sha512", "sha3_224": "sha3_224", "sha3_256": "sha3_256",
    "sha3_384": "sha3_384", "sha3_512": "sha3_512", "blake2b": "blake2b", "blake2s": "blake2s",
}


def hash_(algorithm: Any, data: Any) -> str:
    """Hex digest of ``data`` with an algorithm: md5, sha (sha1), sha224..sha512, sha3_*,
    shake128, shake256, blake2b, blake2s."""
    name, raw = as_text(algorithm), as_bytes(data)
    if name == "shake128":
        return hashlib.shake_128(raw).hexdigest(16)
    if name == "shake256":
        return hashlib.shake_256(raw).hexdigest(32)
    algo = _ALGORITHMS.get(name)
    if algo is None:
        raise BadArg(f"unknown hash algorithm {name!r}")
    return hashlib.new(algo, raw).hexdigest()


def md5(data: Any) -> str:
    """MD5 hex digest."""
    return hashlib.md5(as_bytes(data), usedforsecurity=False).hexdigest()


def sha(data: Any) -> str:
    """SHA-1 hex digest."""
    return hashlib.sha1(as_bytes(data), usedforsecurity=False).hexdigest()


def sha256(data: Any) -> str:
    """SHA-256 hex digest."""
    return hashlib.sha256(as_bytes(data)).hexdigest()


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "base64_encode": base64_encode, "base64_decode": base64_decode, "hash": hash_, "md5": md5,
    "sha": sha, "sha256": sha256,
}
ARITY: dict[str, tuple[int, int | None]] = {"base64_encode": (1, 3), "base64_decode": (1, 3)}
