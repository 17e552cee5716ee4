"""Read a config file once it stopped changing, so a reload never applies half an editor's save.

An editor that saves in place truncates the file and writes it again, possibly in several writes;
a reload (SIGHUP, ``mqferry config reload``) that reads between two of them finds a shorter file,
and a file cut after a complete entry is still valid YAML: it would be applied, dropping every
rule and component below the cut. :func:`read_settled` reads the file, waits :data:`SETTLE_S`,
and reads it again: only two reads that agree, in bytes and in the file's modification time,
size and inode, are taken. Otherwise it waits and compares again, for at most
:data:`SETTLE_TIMEOUT_S`; a file still changing then is refused, and nothing is applied.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mqferry._errors import ConfigError

__all__ = ["SETTLE_S", "SETTLE_TIMEOUT_S", "read_settled"]

#: How long the file must stay the same. Longer than the pause between an editor's writes of
#: one save (milliseconds); short enough not to be noticed on a reload.
SETTLE_S = 0.3
#: How long a file that keeps changing is waited for before the reload is refused.
SETTLE_TIMEOUT_S = 10.0


def _look(path: Path) -> tuple[tuple[int, int, int], bytes]:
    # stat first: a write between the two changes the next look's stat, so it cannot match
    st = path.stat()
    return (st.st_mtime_ns, st.st_size, st.st_ino), path.read_bytes()


def read_settled(path: str | Path, *, settle: float = SETTLE_S,
                 timeout: float = SETTLE_TIMEOUT_S,
                 sleep: Callable[[float], None] = time.sleep) -> bytes:
    """The file's bytes once two reads ``settle`` seconds apart agree (blocking; ``sleep``
    waits between them).

    Raises:
        ConfigError: the file cannot be read, or still changed after ``timeout`` seconds.
    """
    p = Path(path)
    deadline = time.monotonic() + timeout
    try:
        seen = _look(p)
        while True:
            sleep(settle)
            now = _look(p)
            if now == seen:
                return now[1]
            if time.monotonic() >= deadline:
                raise ConfigError([("", f"{p} kept changing for {timeout:g}s (still being "
                                        "written?); nothing was changed: reload once it is "
                                        "saved")])
            seen = now
    except OSError as exc:
        raise ConfigError([("", f"cannot read {p}: {exc.strerror}")]) from None
