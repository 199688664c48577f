"""A bag's payload files in a throwaway SQLite table, so that sealing a bag of any size holds one
row in memory at a time, not a list of every file.

It answers what the package stage asks: the files in bag-path order (SQLite's BINARY collation
compares UTF-8 bytes, which orders as Python's `sorted()` orders code points, so the manifests
come out as before), how many, their total size, whether a path is listed and with what size.
A path given twice is a `package.duplicate`.

The database is a file in the output's staging area (same disk as the bag), unlinked as soon as
it is open, like the ItemStore's file: nothing is left behind, even by a `kill -9`, and closing
it (use the table as a context manager) frees the space.  (A run killed in the instant between
creating and unlinking it leaves a name, which the next table made there removes.)  That is safe because it has no journal
(journal_mode=OFF): SQLite only looks at the file's name again to open a journal next to it.
"""
from __future__ import annotations

import os
import sqlite3
import tempfile
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from .errors import PackagingError, Problem
from .model import FileInfo

BATCH = 256                  # rows per executemany (and manifest lines per write)
LOOKUP = 512                 # paths per query of sizes()
CACHE_KIB = 16384            # SQLite's page cache: 16 MiB, whatever the number of files
PREFIX = ".files-"

_SCHEMA = ("CREATE TABLE files (path TEXT PRIMARY KEY, role TEXT NOT NULL, size INTEGER NOT NULL,"
           " checksums TEXT NOT NULL, repeats INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID")
_INSERT = ("INSERT INTO files (path, role, size, checksums) VALUES (?, ?, ?, ?)"
           " ON CONFLICT (path) DO UPDATE SET repeats = repeats + 1")


class FileTable:
    """`with FileTable(folder) as table: table.add(files)`; then iterate it, `len()`, `in`.
    A throwaway: no journal, no fsync, a bounded page cache, never shared."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._counted: dict[str, tuple[int, int]] = {}
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob(f"{PREFIX}*.db"):  # a run killed in the instant below
                stale.unlink(missing_ok=True)
            fd, name = tempfile.mkstemp(dir=folder, prefix=PREFIX, suffix=".db")
            os.close(fd)
            try:
                self._db = sqlite3.connect(name, isolation_level=None)
                for pragma in ("journal_mode = OFF", "synchronous = OFF", f"cache_size = -{CACHE_KIB}"):
                    self._db.execute(f"PRAGMA {pragma}")
                self._db.execute(_SCHEMA)
            finally:
                Path(name).unlink(missing_ok=True)     # open (or failed): the name is never needed again
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise _failed(folder, exc) from exc

    def __enter__(self) -> "FileTable":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        db = self.__dict__.pop("_db", None)
        if db is not None:
            db.close()

    def add(self, files: Iterable[FileInfo]) -> None:
        """Insert `files` in batches; a path already in the table is a `package.duplicate`."""
        rows = ((f.bagpath, f.role, f.size, " ".join(f"{a} {d}" for a, d in f.checksums.items()))
                for f in files)
        self._counted.clear()
        try:
            self._db.execute("BEGIN")
            while batch := list(islice(rows, BATCH)):
                self._db.executemany(_INSERT, batch)
            self._db.execute("COMMIT")
            repeated = [path for path, in self._db.execute(
                "SELECT path FROM files WHERE repeats > 0 ORDER BY path")]
        except sqlite3.Error as exc:
            raise _failed(self._folder, exc) from exc
        if repeated:
            more = f" (and {len(repeated) - 1} more)" if len(repeated) > 1 else ""
            raise PackagingError(f"{repeated[0]}: listed more than once in the package's payload{more}; "
                                 "nothing was published",
                                 [Problem("package.duplicate", p, "listed more than once in the payload")
                                  for p in repeated])

    def files(self, role: Optional[str] = None) -> Iterator[FileInfo]:
        """The files (of one role), in bag-path order, read one row at a time."""
        where, args = (" WHERE role = ?", (role,)) if role else ("", ())
        try:
            for path, role_, size, checksums in self._db.execute(
                    f"SELECT path, role, size, checksums FROM files{where} ORDER BY path", args):
                words = checksums.split()     # "algorithm digest algorithm digest ..."
                yield FileInfo(role=role_, bagpath=path, size=size,
                               checksums=dict(zip(words[::2], words[1::2])))
        except sqlite3.Error as exc:
            raise _failed(self._folder, exc) from exc

    def __iter__(self) -> Iterator[FileInfo]:
        return self.files()

    def __len__(self) -> int:
        return self._totals("")[0]

    def total_size(self, role: str = "") -> int:
        """The bytes of every file (of one role)."""
        return self._totals(role)[1]

    def _totals(self, role: str) -> tuple[int, int]:
        """(files, bytes) of every file or of one role, counted once after the last add; summed
        in Python, row by row and exactly (SQLite's sum() fails past 2**63, its total() rounds)."""
        if role not in self._counted:
            where, args = (" WHERE role = ?", (role,)) if role else ("", ())
            count = total = 0
            try:
                for size, in self._db.execute(f"SELECT size FROM files{where}", args):
                    count, total = count + 1, total + size
            except sqlite3.Error as exc:
                raise _failed(self._folder, exc) from exc
            self._counted[role] = (count, total)
        return self._counted[role]

    def sizes(self, paths: Sequence[str]) -> dict[str, int]:
        """The recorded sizes of those of `paths` that are listed (a query per LOOKUP paths)."""
        out: dict[str, int] = {}
        for start in range(0, len(paths), LOOKUP):
            chunk = list(paths[start:start + LOOKUP])
            out.update(self._read(f"SELECT path, size FROM files WHERE path IN ({', '.join('?' * len(chunk))})",
                                  chunk))
        return out

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and bool(self._read("SELECT 1 FROM files WHERE path = ?", [path]))

    def _read(self, sql: str, args: Sequence = ()) -> list:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise _failed(self._folder, exc) from exc


def _failed(folder: Path, exc: Exception) -> PackagingError:
    reason = getattr(exc, "strerror", None) or str(exc)
    return PackagingError(f"{folder}: cannot keep the bag's file list there ({reason}); nothing was published")
