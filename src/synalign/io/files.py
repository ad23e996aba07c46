"""What is at a path the user gave, checked before it is read.

A path can exist and still be no data file: a symbolic-link loop, a link to nothing, a
named pipe (reading it would wait forever for a writer), a device, or a compressed file
(whose bytes would be read as text in some wrong encoding). Each is one line naming the
path and what to do, instead of "no such file", a hang or an encoding complaint.
"""

from __future__ import annotations

import errno
import os
import shlex
import stat
from pathlib import Path

from synalign.errors import InputError, SynAlignError

# (what it is, magic bytes at its start, command that unpacks it, its usual suffix);
# bzip2 is checked further (see `_compression`) as 'BZh' alone starts ordinary words.
_COMPRESSED: tuple[tuple[str, bytes, str, str], ...] = (
    ("a gzip-compressed file", b"\x1f\x8b", "gunzip", ".gz"),
    ("a bzip2-compressed file", b"BZh", "bunzip2", ".bz2"),
    ("an xz-compressed file", b"\xfd7zXZ\x00", "unxz", ".xz"),
    ("a zstd-compressed file", b"\x28\xb5\x2f\xfd", "unzstd", ".zst"),
    ("a zip archive", b"PK\x03\x04", "unzip", ".zip"),
)
COMPRESSED_SUFFIXES: tuple[str, ...] = tuple(suffix for *_, suffix in _COMPRESSED)
# The block and end-of-stream markers that follow 'BZh' and the block size digit.
_BZIP2_MARKERS = (b"1AY&SY", b"\x17rE8P\x90")

_SPECIAL = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def stat_path(
    p: Path,
    source: str,
    missing: str = "no such file or folder; check the path",
    error: type[SynAlignError] = InputError,
) -> os.stat_result:
    """`p`'s status (links followed); a missing path says `missing`, and a link loop or a
    link to nothing says so, as Path.exists() would call both missing."""
    try:
        return p.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise error(
                f"{source} is a symbolic-link loop (following its links leads back to a link"
                " already followed); point the link at the data itself"
            ) from e
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            if p.is_symlink():
                raise error(
                    f"{source} is a symbolic link to {os.readlink(p)}, which does not exist;"
                    " point the link at the data itself"
                ) from e
            raise error(f"{source}: {missing}") from e
        raise error(f"{source}: cannot read it ({e.strerror or e})") from e


def refuse_special(
    status: os.stat_result,
    source: str,
    what: str = "the data",
    error: type[SynAlignError] = InputError,
) -> None:
    """Refuse a FIFO, socket or device: reading one can block forever or never end."""
    for test, kind in _SPECIAL:
        if test(status.st_mode):
            raise error(f"{source} is not a regular file ({kind}); save {what} to a file first")


def refuse_compressed(p: Path, source: str) -> None:
    """Refuse a compressed file with the command that unpacks it, by its first bytes
    (its name need not say it is compressed)."""
    try:
        with p.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise InputError(f"{source}: cannot read file ({e.strerror or e})") from e
    found = _compression(head)
    if found is None:
        return
    what, tool, suffix = found
    quoted = shlex.quote(source)
    step = "extract the data file from it" if suffix == ".zip" else "decompress it"
    if p.suffix.lower() == suffix and suffix == ".zip":
        how = f"({tool} {quoted}) and pass that file"
    elif p.suffix.lower() == suffix:
        how = f"({tool} {quoted}) and pass {shlex.quote(source[: -len(suffix)])}"
    else:
        out = shlex.quote(str(p.with_name(f"{p.stem}-decompressed{p.suffix}")))
        stream = "unzip -p" if suffix == ".zip" else f"{tool} -c"
        how = f"({stream} {quoted} > {out}) and pass {out}"
    raise InputError(f"{source} is {what}; {step} first {how}")


def _compression(head: bytes) -> tuple[str, str, str] | None:
    """(what it is, unpacking command, suffix) of compressed bytes, else None."""
    for what, magic, tool, suffix in _COMPRESSED:
        if not head.startswith(magic):
            continue
        if suffix == ".bz2" and not (head[3:4].isdigit() and head[4:10] in _BZIP2_MARKERS):
            continue
        return what, tool, suffix
    return None
