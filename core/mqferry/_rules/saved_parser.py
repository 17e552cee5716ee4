"""The rule parser saved beside its grammar, loaded at start-up instead of built.

Building the LALR tables from the grammar leaves the analysis's objects in the heap (about
1 MiB resident); loading saved tables does not. ``scripts/compile.py`` saves the parser with
lark's ``Lark.save`` (:func:`save`, written to a temporary file and renamed into place); a start
loads it with ``Lark.load`` (:func:`load`) only when the file's key matches: a digest of the
grammar, the parser's options, lark's version and Python's. Any other file, or none, and the
parser is built from the grammar. Nothing is written while mqferry runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import lark

log = logging.getLogger(__name__)

#: the first line of a saved parser
MAGIC = b"mqferry rule parser 1\n"


def key(grammar: str, options: Mapping[str, object]) -> bytes:
    """What a saved parser must have been made from to be loaded (the second line)."""
    digest = hashlib.sha256()
    for part in (grammar, repr(sorted(options.items())), lark.__version__, sys.version):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest().encode()


def save(parser: lark.Lark, path: Path, grammar: str, options: Mapping[str, object]) -> None:
    """Write ``parser`` to ``path``, atomically (a reader sees the old file or the new one).

    Raises:
        OSError: it could not be written.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(MAGIC + key(grammar, options) + b"\n")
            parser.save(f)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: Path, grammar: str, options: Mapping[str, object]) -> lark.Lark | None:
    """The parser saved in ``path``; ``None`` when there is none, or it was made from another
    grammar, other options or another lark or Python (the caller builds it then)."""
    try:
        with path.open("rb") as f:
            if f.readline() != MAGIC or f.readline() != key(grammar, options) + b"\n":
                log.debug("saved rule parser %s is not this grammar's: building it", path)
                return None
            return lark.Lark.load(f)
    except FileNotFoundError:
        return None
    except Exception as exc:  # damaged: the grammar is still there
        log.warning("saved rule parser %s cannot be loaded (%r): building it from the grammar",
                    path, exc)
        return None
