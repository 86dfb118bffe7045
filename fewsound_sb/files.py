"""Atomic file writing: the one way this package writes a file.

Every output (audio in :func:`fewsound_sb.dataio.write_audio`, figures in
:mod:`fewsound_sb.plotting`, weights files in :mod:`fewsound_sb.weights`,
reports in :mod:`fewsound_sb.reports`, the fitter's records and resume state)
goes through :func:`atomic_write`: the content is written to a temporary file
in the destination folder, flushed to disk (``fsync``) and renamed over the
destination with ``os.replace``. A reader therefore sees the old file or the
new one, never a half-written one, even if the process is killed mid-write.

The temporary file is created with mode ``0o666`` filtered by the process
umask, like any file ``open(path, "w")`` creates, so the result has the usual
permissions (``rw-r--r--`` under umask 022), not ``tempfile.mkstemp``'s
owner-only ``0o600``.
"""

import hashlib
import os
import secrets

import torch

TMP_PREFIX = ".tmp_"


def _temporary_path(path):
    """Creates an empty, unique temporary file next to ``path``; returns its name.

    The name keeps the destination's extension, so writers that pick the
    format from it (soundfile, matplotlib) work on the temporary file.
    """
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(name)[1]
    while True:
        tmp_path = os.path.join(folder, f"{TMP_PREFIX}{name}.{secrets.token_hex(6)}{suffix}")
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        except FileExistsError:
            continue
        os.close(fd)
        return tmp_path


def atomic_write(path, write):
    """Writes a file atomically through ``write(tmp_path)``.

    ``write`` gets the path of an empty temporary file in the destination
    folder (same extension as ``path``) and fills it by any means; the file
    is then fsync'ed and renamed onto ``path``. On any error (or Ctrl-C) the
    temporary file is removed and ``path`` is left as it was. Parent folders
    are created.

    Arguments
    ---------
    path : str or os.PathLike
        Destination file.
    write : callable
        ``write(tmp_path)`` writes the content to ``tmp_path``.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "sub", "a.txt")
    >>> def write(tmp):
    ...     with open(tmp, "w") as fout:
    ...         fout.write("hello")
    >>> atomic_write(path, write)
    >>> open(path).read(), os.listdir(os.path.dirname(path))
    ('hello', ['a.txt'])
    """
    path = os.fspath(path)
    tmp_path = _temporary_path(path)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as fin:
            os.fsync(fin.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def write_bytes(path, data):
    """Writes ``data`` (bytes) to ``path`` atomically.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "b.bin")
    >>> write_bytes(path, b"\\x00\\x01")
    >>> open(path, "rb").read()
    b'\\x00\\x01'
    """

    def write(tmp_path):
        with open(tmp_path, "wb") as fout:
            fout.write(data)

    atomic_write(path, write)


def write_text(path, text, newline=None):
    """Writes ``text`` (UTF-8) to ``path`` atomically.

    Arguments
    ---------
    path : str or os.PathLike
        Destination file.
    text : str
        Content.
    newline : str or None
        As for ``open`` (``""`` for csv writers' own line endings).

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "t.md")
    >>> write_text(path, "# title\\n")
    >>> open(path, encoding="utf-8").read()
    '# title\\n'
    """

    def write(tmp_path):
        with open(tmp_path, "w", encoding="utf-8", newline=newline) as fout:
            fout.write(text)

    atomic_write(path, write)


def save_torch(obj, path):
    """``torch.save(obj, path)`` atomically.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "state.pt")
    >>> save_torch({"step": 3, "w": torch.ones(2)}, path)
    >>> torch.load(path, weights_only=True)["step"]
    3
    """
    atomic_write(path, lambda tmp_path: torch.save(obj, tmp_path))


def file_sha256(path, chunk_size=1 << 20):
    """SHA-256 of a file's bytes (hex), read in chunks (any file size).

    Arguments
    ---------
    path : str or os.PathLike
        The file.
    chunk_size : int
        Bytes read at a time.

    Returns
    -------
    str
        64 hex digits.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.bin")
    >>> write_bytes(path, b"abc")
    >>> file_sha256(path)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fin:
        for chunk in iter(lambda: fin.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
