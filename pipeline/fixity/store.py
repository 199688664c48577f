"""A bag's plan kept out of Python memory: manifest lines and the file list in a temporary SQLite
database on disk (a private one, deleted when closed), compared with SQL joins.

    lines  every manifest line read (name as written, NFC key, algorithm, digest, where it was)
    names  one row per NFC key: the first name and tag flag the manifests gave it
    exp    one row per (key, algorithm): the first digest the manifests gave it
    disk   one row per regular file found (NFC key, name on disk, size); links holds link keys
    twins  files whose names differ from one in disk only by Unicode normalization (same key):
           never matched to a manifest line, each reported; the one named exactly as the manifest
           names it is the one in disk
    (a name is NULL where it is its key, as nearly always: rows half as wide)
    blocks the files to hash, BLOCK at a time (marshalled): reading them back takes one step
           into SQLite per block, not per file (SQLite lets go of the GIL at every step, which
           cost a third of a tiny-file audit when the hashing threads read row by row)

Lines and files are streamed in, in batches; what comes out (problems, and the files to hash, in
key order) is streamed too, so memory stays the same whatever the number of files.
"""
from __future__ import annotations

import marshal
import sqlite3
from typing import Iterator

from ..errors import ProcessingError

BATCH = 5000         # rows written per executemany
BLOCK = 1000         # files to hash per stored block
CACHE_KIB = 4096      # page cache of the plan database; the rest spills to its temporary file

SCHEMA = """
CREATE TABLE lines (key TEXT, name TEXT, alg TEXT, digest TEXT, tag INTEGER, manifest INTEGER, line INTEGER);
CREATE TABLE names (key TEXT PRIMARY KEY, name TEXT, tag INTEGER) WITHOUT ROWID;
CREATE TABLE exp (key TEXT, alg TEXT, digest TEXT, PRIMARY KEY (key, alg)) WITHOUT ROWID;
CREATE TABLE disk (key TEXT PRIMARY KEY, rel TEXT, size INTEGER) WITHOUT ROWID;
CREATE TABLE twins (key TEXT, rel TEXT, size INTEGER);
CREATE TABLE links (key TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE blocks (data BLOB);
"""

# Files the manifests list and the bag holds: key, name on disk, size, "alg digest alg digest ..."
TASKS = ("SELECT n.key, coalesce(d.rel, n.key), d.size, group_concat(e.alg || ' ' || e.digest, ' ') FROM names n"
         " JOIN disk d ON d.key = n.key JOIN exp e ON e.key = n.key GROUP BY n.key ORDER BY n.key")


class PlanStore:
    """One bag's plan tables.  Not shared between threads at once (the lane of `hash_many` takes
    one file at a time, so the task stream may be read from its threads)."""

    def __init__(self) -> None:
        try:
            self.db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
            for pragma in ("journal_mode = OFF", "synchronous = OFF", "temp_store = FILE",
                           f"cache_size = -{CACHE_KIB}"):
                self.db.execute(f"PRAGMA {pragma}")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise ProcessingError(f"cannot make the temporary plan database of a fixity audit: {exc}") from exc
        self.pending: dict[str, list[tuple]] = {"lines": [], "disk": [], "links": [], "blocks": []}

    def close(self) -> None:
        self.db.close()

    def _rows(self, sql: str, args: tuple = ()) -> Iterator[tuple]:
        try:
            yield from self.db.execute(sql, args)
        except sqlite3.Error as exc:
            raise ProcessingError(f"temporary plan database of a fixity audit: {exc}") from exc

    def one(self, sql: str, args: tuple = ()) -> tuple:
        return next(self._rows(sql, args))

    # -- filling (callers append to `pending` and flush every BATCH rows) ------------------------

    def flush(self) -> None:
        inserts = {"lines": "INSERT INTO lines VALUES (?, ?, ?, ?, ?, ?, ?)",
                   "disk": "INSERT OR IGNORE INTO disk VALUES (?, ?, ?)",    # same key twice: see _twins
                   "links": "INSERT OR IGNORE INTO links VALUES (?)",
                   "blocks": "INSERT INTO blocks VALUES (?)"}
        try:
            self.db.execute("BEGIN")   # one transaction per batch, not one per row
            for table, rows in self.pending.items():
                if rows:
                    before = self.db.total_changes
                    self.db.executemany(inserts[table], rows)
                    if table == "disk" and self.db.total_changes - before < len(rows):
                        self._twins(rows)
                    rows.clear()
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise ProcessingError(f"temporary plan database of a fixity audit: {exc}") from exc

    def _twins(self, rows: list[tuple]) -> None:
        """Keep the files of a batch that another file's key kept out of disk (a batch with
        fewer rows inserted than given: rare, so looked at row by row)."""
        for key, rel, size in rows:
            if self.db.execute("SELECT 1 FROM disk WHERE key = ? AND rel IS ?", (key, rel)).fetchone() is None:
                self.db.execute("INSERT INTO twins VALUES (?, ?, ?)", (key, rel, size))

    def forget_manifest(self, manifest: int) -> None:
        """Drop the lines of a manifest that turned out unreadable halfway."""
        self.flush()
        list(self._rows("DELETE FROM lines WHERE manifest = ?", (manifest,)))

    def merge(self) -> None:
        """Every line read: the first name, tag flag and digest per key win (later ones are duplicates)."""
        self.flush()
        list(self._rows("INSERT OR IGNORE INTO names SELECT key, name, tag FROM lines ORDER BY rowid"))
        list(self._rows("INSERT OR IGNORE INTO exp SELECT key, alg, digest FROM lines ORDER BY rowid"))
        # Of twins, the file named exactly as the manifest names it is the one checked.
        exact = ("SELECT t.rowid, t.rel, t.size, d.rel, d.size FROM twins t JOIN disk d ON d.key = t.key"
                 " JOIN names n ON n.key = t.key WHERE t.rel IS n.name AND d.rel IS NOT n.name")
        for rowid, rel, size, other, other_size in list(self._rows(exact)):
            list(self._rows("UPDATE twins SET rel = ?, size = ? WHERE rowid = ?", (other, other_size, rowid)))
            list(self._rows("UPDATE disk SET rel = ?, size = ? WHERE key = (SELECT key FROM twins WHERE rowid = ?)",
                            (rel, size, rowid)))

    # -- comparing ------------------------------------------------------------------------------

    def duplicates(self) -> Iterator[tuple]:
        """(name, alg, first digest, this digest, manifest, line) of lines that contradict an earlier one."""
        return self._rows("SELECT coalesce(l.name, l.key), l.alg, e.digest, l.digest, l.manifest, l.line FROM lines l"
                          " JOIN exp e ON e.key = l.key AND e.alg = l.alg WHERE l.digest != e.digest"
                          " ORDER BY l.rowid")

    def missing(self) -> Iterator[tuple[str, str]]:
        """(name, "alg digest ...") of listed files neither on disk nor a link."""
        return self._rows("SELECT coalesce(n.name, n.key), group_concat(e.alg || ' ' || e.digest, ' ') FROM names n"
                          " JOIN exp e ON e.key = n.key WHERE n.key NOT IN (SELECT key FROM disk)"
                          " AND n.key NOT IN (SELECT key FROM links) GROUP BY n.key ORDER BY n.key")

    def unlisted(self, payload_algs: list[str]) -> Iterator[tuple[str, str]]:
        """(name, "alg alg ...") of payload files present but absent from some payload manifest."""
        marks = ", ".join("?" * len(payload_algs))
        return self._rows(f"SELECT coalesce(n.name, n.key), group_concat(e.alg, ' ') FROM names n"
                          f" JOIN disk d ON d.key = n.key"
                          f" JOIN exp e ON e.key = n.key WHERE n.tag = 0 GROUP BY n.key"
                          f" HAVING count(CASE WHEN e.alg IN ({marks}) THEN 1 END) < ? ORDER BY n.key",
                          (*payload_algs, len(set(payload_algs))))

    def renamed(self) -> Iterator[tuple[str, str]]:
        """(name on disk, name in the manifest) of files matched only after NFC."""
        return self._rows("SELECT coalesce(d.rel, d.key), coalesce(n.name, n.key) FROM names n"
                          " JOIN disk d ON d.key = n.key WHERE d.rel IS NOT n.name ORDER BY n.key")

    def unexpected(self) -> Iterator[tuple[str]]:
        """Payload files on disk that no payload manifest lists."""
        return self._rows("SELECT coalesce(d.rel, d.key) FROM disk d"
                          " WHERE substr(coalesce(d.rel, d.key), 1, 5) = 'data/' AND NOT EXISTS"
                          " (SELECT 1 FROM names n WHERE n.key = d.key AND n.tag = 0) ORDER BY d.key")

    def twins(self) -> Iterator[tuple[str, str]]:
        """(name on disk, name of the file checked in its place) of files left out as twins."""
        return self._rows("SELECT coalesce(t.rel, t.key), coalesce(d.rel, d.key) FROM twins t"
                          " JOIN disk d ON d.key = t.key ORDER BY t.key, t.rel")

    def payload(self) -> tuple[int, int]:
        """(files, bytes) under data/ on disk (twins too)."""
        return self.one("SELECT count(*), coalesce(sum(size), 0) FROM (SELECT key, rel, size FROM disk"
                        " UNION ALL SELECT key, rel, size FROM twins) WHERE substr(coalesce(rel, key), 1, 5) = 'data/'")

    def totals(self) -> tuple[int, int]:
        """(files, bytes) to hash: listed and present."""
        return self.one("SELECT count(*), coalesce(sum(d.size), 0) FROM names n JOIN disk d ON d.key = n.key")

    def algorithms(self) -> list[str]:
        return [a for a, in self._rows("SELECT DISTINCT e.alg FROM exp e JOIN disk d ON d.key = e.key"
                                       " ORDER BY e.alg")]

    def write_tasks(self) -> None:
        """Store the files to hash in blocks, in key order (once the comparison is done)."""
        try:
            cursor = self.db.execute(TASKS)
            while rows := cursor.fetchmany(BLOCK):
                self.pending["blocks"].append((marshal.dumps(
                    [(key, rel, size, digests_of(pairs)) for key, rel, size, pairs in rows]),))
                if len(self.pending["blocks"]) >= 16:
                    self.flush()
            self.flush()
        except sqlite3.Error as exc:
            raise ProcessingError(f"temporary plan database of a fixity audit: {exc}") from exc

    def tasks(self) -> Iterator[tuple[str, str, int, dict[str, str]]]:
        """(key, name on disk, size, {alg: digest}) of every file to hash, in key order."""
        for data, in self._rows("SELECT data FROM blocks ORDER BY rowid"):
            yield from marshal.loads(data)

    def listed_bytes(self, registry: str, bag_id: int) -> tuple[int, int]:
        """(every file, payload files) bytes the manifests list: a file's size on disk, or when it
        is absent the size the registry last saw (unknown: 0)."""
        return self._with_registry(registry, "SELECT coalesce(sum(s), 0), coalesce(sum(CASE WHEN n.tag = 0 THEN s END), 0)"
                                   " FROM (SELECT n.tag, coalesce(d.size, f.size, 0) AS s FROM names n"
                                   " LEFT JOIN disk d ON d.key = n.key"
                                   " LEFT JOIN registry.files f ON f.bag_id = ? AND f.path = n.key) n", (bag_id,))

    def _with_registry(self, registry: str, sql: str, args: tuple) -> tuple:
        """One row of `sql` run with the registry attached (as `registry`)."""
        self.flush()
        list(self._rows("ATTACH DATABASE ? AS registry", (registry,)))
        try:
            return self.one(sql, args)
        finally:
            list(self._rows("DETACH DATABASE registry"))


def digests_of(pairs: str) -> dict[str, str]:
    """"alg digest alg digest" -> {alg: digest}."""
    words = pairs.split(" ")
    return dict(zip(words[::2], words[1::2]))


