"""Files written whole or not at all, and a failed write as the one line the user sees.

Every file of a run is written through a temporary file beside it and a rename: a reader
never sees half of one.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forecast.errors import RunError


def write_text_atomic(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half."""
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding=encoding, newline=""))


def write_atomic(path: Path, write: Callable[[Path], Any], suffix: str = ".tmp") -> None:
    """`write(tmp)` fills a temporary file beside `path`, which is then renamed to `path`.
    `suffix` keeps the extension a writer may insist on (Keras: .keras, matplotlib: .png)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> what a plain open would give
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc  # the file, not its tmp
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask, read without changing it (Linux), else by setting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


WRITE_ERRORS = {
    errno.ENOSPC: "no space left on {device} while writing {file}; free space or choose "
    "{elsewhere}",
    errno.EDQUOT: "disk quota exceeded on {device} while writing {file}; free space or choose "
    "{elsewhere}",
    errno.EFBIG: "file too large for {device} while writing {file}; choose {elsewhere}",
    errno.EROFS: "{device} is read-only: cannot write {file}; choose {elsewhere}",
    errno.EACCES: "permission denied writing {file}; make its folder writable or choose "
    "{elsewhere}",
    errno.EPERM: "operation not permitted writing {file}; make its folder writable or choose "
    "{elsewhere}",
    errno.EISDIR: "{file} is a folder, not a file; choose {elsewhere}",
}


def out_of_space(exc: BaseException) -> bool:
    """A write failed for want of space (a full disk, a quota, a file size limit)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_failure(
    exc: BaseException, fallback: Path | None, elsewhere: str = "--runs-dir"
) -> RunError | None:
    """A failed write to the disk (full, read-only, no permission) as the one-line error to
    show, or None for any other exception. `fallback`: the file to name when the error does
    not (h5py names it in its message only), None if unknown; `elsewhere`: the option that
    puts it elsewhere."""
    if not isinstance(exc, OSError) or exc.errno not in WRITE_ERRORS:
        return None
    file = exc.filename
    if file is None:
        named = re.search(r"filename = '([^']+)'", str(exc))
        file = named.group(1) if named else fallback
    if file is None:  # nothing says which file, nor so which disk
        return RunError(WRITE_ERRORS[exc.errno].format(device="the disk", file="a file",
                                                       elsewhere=elsewhere))  # fmt: skip
    device = Path(os.path.realpath(file))
    while not os.path.ismount(device) and device != device.parent:
        device = device.parent
    message = WRITE_ERRORS[exc.errno].format(device=device, file=file, elsewhere=elsewhere)
    return RunError(message)


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
