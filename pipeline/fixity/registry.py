"""The fixity registry: every audit, and every file it checked, in one SQLite database.

Schema (version 2; a version-1 registry is migrated when opened for writing, see MIGRATIONS):

    bags    (id, location UNIQUE, name, first_seen)
    audits  (id, bag_id, started, finished, mode, outcome, files_checked, bytes_checked,
             files_total, bytes_total, problems, algorithms, agent)
             mode: full | rolling | fast; outcome: intact | problems | complete | NULL while running
             (an audit killed halfway keeps finished and outcome NULL: "interrupted")
    checks  (audit_id, path, checked, outcome, size, seen, expected, code, reason, planned)   one row
             per file hashed per audit (size: what was read, NULL when it could not be), and one
             per problem its planning found (planned 1: written with the audit row, in one
             transaction; index checks_planned)
             outcome: intact | changed | unreadable (hashed); missing | unexpected | special | ...
             (the code's second part) for an error planning found, warning | info for a finding
             below error level (a code's own severity, or the finding's: archive.py's warnings)
             seen/expected: JSON objects algorithm -> hex digest (expected only when it
             differs from what was seen: for an intact file it is the same)
    files   (bag_id, path, size, last_checked, last_outcome, last_verified)   latest state per file;
             last_verified is the last time the file was found intact (rolling audits pick the
             oldest first, never-verified first);
             state_audit, state, prior_state: what the latest audit that hashed the file found
             ('' intact, fixity.mismatch, fixity.unreadable), and what the hash before that one
             found (NULL: never hashed before), so a report tells new damage from known and
             recovered files (problems planning finds are compared with planning rows instead:
             planned_before)
    retirements (bag_id, retired, reason, revived)   a bag deliberately deleted or moved: no
             longer reported vanished; `revived` is when a bag was found again at its location
             (audited from then on as a new life: its files' latest state starts afresh); at
             most one open (not revived) retirement per bag (index retirements_open; a registry
             that has two, left by two --retire at once before it, keeps the earliest: the later
             one is deleted, as the index would have refused it)

Times are ISO 8601 UTC with a Z.  The database runs in WAL mode with a busy timeout, and writes in
short IMMEDIATE transactions, so two audits can run at once; each batch of results is committed as
it comes, so an audit killed halfway keeps what it had recorded.
"""
from __future__ import annotations

import itertools
import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Optional

from ..errors import ProcessingError, UsageError, path_error

SCHEMA_VERSION = "2"
BUSY_TIMEOUT_MS = 120_000
VERIFIED_BATCH = 5000      # files per query of verified_bytes

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bags (
    id INTEGER PRIMARY KEY, location TEXT NOT NULL UNIQUE, name TEXT NOT NULL, first_seen TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audits (
    id INTEGER PRIMARY KEY, bag_id INTEGER NOT NULL REFERENCES bags(id),
    started TEXT NOT NULL, finished TEXT, mode TEXT NOT NULL, outcome TEXT,
    files_checked INTEGER NOT NULL DEFAULT 0, bytes_checked INTEGER NOT NULL DEFAULT 0,
    files_total INTEGER NOT NULL DEFAULT 0, bytes_total INTEGER NOT NULL DEFAULT 0,
    problems INTEGER NOT NULL DEFAULT 0, algorithms TEXT NOT NULL DEFAULT '', agent TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS audits_bag ON audits(bag_id, started);
CREATE TABLE IF NOT EXISTS checks (
    audit_id INTEGER NOT NULL REFERENCES audits(id), path TEXT NOT NULL, checked TEXT NOT NULL,
    outcome TEXT NOT NULL, size INTEGER, seen TEXT NOT NULL DEFAULT '{}', expected TEXT NOT NULL DEFAULT '{}',
    code TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', planned INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS checks_audit ON checks(audit_id);
CREATE INDEX IF NOT EXISTS checks_planned ON checks(audit_id) WHERE planned;
CREATE TABLE IF NOT EXISTS files (
    bag_id INTEGER NOT NULL REFERENCES bags(id), path TEXT NOT NULL, size INTEGER,
    last_checked TEXT, last_outcome TEXT, last_verified TEXT,
    state_audit INTEGER, state TEXT, prior_state TEXT,
    PRIMARY KEY (bag_id, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retirements (
    id INTEGER PRIMARY KEY, bag_id INTEGER NOT NULL REFERENCES bags(id), retired TEXT NOT NULL,
    reason TEXT NOT NULL, revived TEXT);
DELETE FROM retirements WHERE revived IS NULL AND EXISTS (SELECT 1 FROM retirements r
    WHERE r.bag_id = retirements.bag_id AND r.revived IS NULL AND (r.retired, r.id) < (retirements.retired, retirements.id));
CREATE UNIQUE INDEX IF NOT EXISTS retirements_open ON retirements(bag_id) WHERE revived IS NULL;
"""
# (a version-2 registry made before retirements_open gets it when opened: SCHEMA runs at every open,
# its duplicate open retirements deleted first, all but the earliest)
RETIREMENTS = list(filter(str.strip, SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS retirements"):].split(";")))

# version -> the statements that bring a registry of that version to the next (in one transaction)
MIGRATIONS = {
    "1": ["ALTER TABLE files ADD COLUMN state_audit INTEGER",
          "ALTER TABLE files ADD COLUMN state TEXT",
          "ALTER TABLE files ADD COLUMN prior_state TEXT",
          # the latest state version 1 knew: what its hashing found (other problems were not kept per file)
          "UPDATE files SET state = CASE last_outcome WHEN 'intact' THEN '' WHEN 'changed' THEN 'fixity.mismatch'"
          " WHEN 'unreadable' THEN 'fixity.unreadable' END",
          *RETIREMENTS],
}
# a registry made before checks.planned (version 1, or a version 2 of the first days) gets it when opened
# for writing, before SCHEMA; its planning rows were those with no size that no hash wrote (a hash that
# could not read the file wrote unreadable, with what it expected)
PLANNED = ["ALTER TABLE checks ADD COLUMN planned INTEGER NOT NULL DEFAULT 0",
           "UPDATE checks SET planned = 1 WHERE size IS NULL"
           " AND (outcome NOT IN ('intact', 'changed', 'unreadable') OR expected = '{}')"]


def _digests_json(digests: Optional[dict]) -> str:
    """{"sha256": "hex", ...}.  Written by hand (6x faster than json.dumps, one call per file):
    algorithm names match [A-Za-z0-9]+ (manifest names) and digests are hex, so nothing needs
    escaping."""
    if not digests:
        return "{}"
    if len(digests) == 1:
        for alg, value in digests.items():
            return '{"%s": "%s"}' % (alg, value)
    return "{" + ", ".join('"%s": "%s"' % (alg, digests[alg]) for alg in sorted(digests)) + "}"


def _rows_json(checks: Iterable[Check]) -> str:
    return json.dumps([(c.path, c.outcome, c.size, _digests_json(c.seen), _digests_json(c.expected), c.code, c.reason)
                       for c in checks], ensure_ascii=False)


def _insert_checks(db: sqlite3.Connection, audit_id: int, checked: str, rows: str, planned: bool = False) -> None:
    """Insert a batch of checks given as one JSON array expanded by SQL (json_each): one statement
    step per batch instead of one per row, so the hashing threads do not convoy on the GIL, which
    the sqlite3 module releases and takes back around every step."""
    db.execute("INSERT INTO checks (audit_id, path, checked, outcome, size, seen, expected, code, reason, planned)"
               " SELECT ?, value->>0, ?, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, ?"
               " FROM json_each(?)", (audit_id, checked, planned, rows))


class Check(NamedTuple):
    """One file's result, as recorded (a tuple: an audit makes one per file)."""

    path: str
    outcome: str
    size: Optional[int] = None
    seen: Optional[dict] = None
    expected: Optional[dict] = None
    code: str = ""
    reason: str = ""


@dataclass(frozen=True)
class AuditRow:
    id: int
    location: str
    name: str
    started: str
    finished: Optional[str]
    mode: str
    outcome: Optional[str]
    files_checked: int
    bytes_checked: int
    files_total: int
    bytes_total: int
    problems: int
    algorithms: str
    agent: str

    @property
    def status(self) -> str:
        return self.outcome or "interrupted"


class Registry:
    """One connection to the registry.  Use as a context manager; not shared between threads."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        """Open (creating it unless `readonly`) the registry at `path`.  A read-only registry
        is opened as such by SQLite: reading the history never changes the file."""
        self.path = Path(path)
        mode = "wal"
        try:
            if readonly:
                self.db = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True,
                                          timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
                self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                self._check_schema()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
                self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                self._check_schema(create=True)    # first: another database is left as it is
                mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                self.db.execute("PRAGMA synchronous = NORMAL")
                self.db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
                raise self._foreign() from None
            raise ProcessingError(f"{self.path}: cannot open the fixity registry: {exc}") from exc
        except OSError as exc:
            raise ProcessingError(f"{self.path}: cannot create the fixity registry: {exc.strerror}") from exc
        if str(mode).lower() != "wal":
            raise ProcessingError(f"{self.path}: the registry cannot use WAL mode (journal mode {mode})")

    def _foreign(self) -> UsageError:
        return path_error(self.path, "not a fixity registry (another file or database; name the registry "
                                     "with --db, or a new file)")

    def _check_schema(self, create: bool = False) -> None:
        """A database with no table becomes a registry (`create`); one with tables is a registry
        only with our meta row: another application's database is never written into."""
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'").fetchone():
            try:
                row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            except sqlite3.OperationalError:    # no meta table, or another one
                row = None
            if row is None:
                raise self._foreign()
            self.version = row[0]
            if self.version in MIGRATIONS and create:
                self._migrate()
            elif self.version not in (SCHEMA_VERSION, *MIGRATIONS):
                raise ProcessingError(f"{self.path}: registry schema {row[0]}, this version reads {SCHEMA_VERSION}")
        elif not create:
            raise self._foreign()
        else:
            self.version = SCHEMA_VERSION
        if create:
            with self.transaction() as db:
                if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'checks'").fetchone() and not db.execute(
                        "SELECT 1 FROM pragma_table_info('checks') WHERE name = 'planned'").fetchone():
                    for statement in PLANNED:
                        db.execute(statement)
                for statement in filter(str.strip, SCHEMA.split(";")):
                    db.execute(statement)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))

    def _migrate(self) -> None:
        """Bring an older registry to SCHEMA_VERSION, one version at a time, each step in one
        transaction (another process may have done it meanwhile: the version is read again)."""
        while self.version != SCHEMA_VERSION:
            with self.transaction() as db:
                self.version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
                if self.version == SCHEMA_VERSION:
                    break
                for statement in MIGRATIONS[self.version]:
                    db.execute(statement)
                self.version = str(int(self.version) + 1)
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (self.version,))

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction, taken at once (IMMEDIATE) so that it never deadlocks."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise ProcessingError(f"{self.path}: fixity registry: {exc}") from exc

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise ProcessingError(f"{self.path}: fixity registry: {exc}") from exc

    # -- writing --------------------------------------------------------------------------------

    def begin_audit(self, location: str, name: str, mode: str, started: str, algorithms: Iterable[str],
                    agent: str, planned: Iterable[Check] = ()) -> tuple[int, int, Optional[tuple[str, str]]]:
        """Register the bag if new and open an audit row with the problems its planning found
        (`planned`: all of them, in the same transaction, so an audit's planning rows are never
        partial); returns (bag_id, audit_id, revived): revived is (retired, reason) of the
        retirement of its location this audit ends, or None."""
        rows = _rows_json(planned)
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO bags (location, name, first_seen) VALUES (?, ?, ?)",
                       (location, name, started))
            bag_id = db.execute("SELECT id FROM bags WHERE location = ?", (location,)).fetchone()[0]
            revived = db.execute("UPDATE retirements SET revived = ? WHERE bag_id = ? AND revived IS NULL"
                                 " RETURNING retired, reason", (started, bag_id)).fetchall()   # every row stepped
            if revived:    # back at a retired location: a new life
                db.execute("DELETE FROM files WHERE bag_id = ?", (bag_id,))
            cur = db.execute("INSERT INTO audits (bag_id, started, mode, algorithms, agent) VALUES (?, ?, ?, ?, ?)",
                             (bag_id, started, mode, ",".join(algorithms), agent))
            _insert_checks(db, cur.lastrowid, started, rows, planned=True)
            return bag_id, cur.lastrowid, tuple(revived[-1]) if revived else None

    def record(self, bag_id: int, audit_id: int, checked: str,
               checks: Iterable[Check]) -> list[tuple[str, Optional[str], str]]:
        """Record one batch of hashed files' checks and commit it; returns (path, prior state,
        state) of each file, read as it was written (RETURNING): what the hash before this
        audit's found ('' intact, error codes, None never hashed) is this audit's, whatever
        another audit of the bag running at the same time records after it."""
        rows = _rows_json(checks)
        with self.transaction() as db:
            _insert_checks(db, audit_id, checked, rows)
            # prior_state: the previous audit's state, kept when the same audit writes the file again
            return db.execute(
                "INSERT INTO files (bag_id, path, size, last_checked, last_outcome, last_verified, state_audit, state)"
                " SELECT ?, value->>0, value->>2, ?, value->>1, CASE WHEN value->>1 = 'intact' THEN ? END, ?,"
                " value->>5 FROM json_each(?) WHERE true"
                " ON CONFLICT (bag_id, path) DO UPDATE SET size = excluded.size,"
                " last_checked = excluded.last_checked, last_outcome = excluded.last_outcome,"
                " last_verified = COALESCE(excluded.last_verified, files.last_verified),"
                " prior_state = CASE WHEN files.state_audit IS excluded.state_audit THEN files.prior_state"
                " ELSE files.state END, state = excluded.state, state_audit = excluded.state_audit"
                " RETURNING path, prior_state, state", (bag_id, checked, checked, audit_id, rows)).fetchall()

    def finish_audit(self, audit_id: int, finished: str, outcome: str, files_checked: int, bytes_checked: int,
                     files_total: int, bytes_total: int, problems: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE audits SET finished = ?, outcome = ?, files_checked = ?, bytes_checked = ?,"
                       " files_total = ?, bytes_total = ?, problems = ? WHERE id = ?",
                       (finished, outcome, files_checked, bytes_checked, files_total, bytes_total,
                        problems, audit_id))

    # -- reading --------------------------------------------------------------------------------

    def last_verified(self, location: str) -> dict[str, str]:
        """path -> when it was last found intact, for one bag."""
        return dict(self._query("SELECT f.path, f.last_verified FROM files f JOIN bags b ON b.id = f.bag_id"
                                " WHERE b.location = ? AND f.last_verified IS NOT NULL", (location,)))

    def verified_bytes(self, bag_id: int, cutoff: str, files: Iterable[tuple[str, int]]) -> int:
        """Bytes of `files` (path, size) found intact at `cutoff` or later whose latest check found
        them intact (a file damaged since does not count); read in batches of JSON arrays, each
        the outer loop (CROSS JOIN): SQLite chose to scan the bag's files once per batch element."""
        total, files = 0, iter(files)
        while batch := list(itertools.islice(files, VERIFIED_BATCH)):
            total += self._query("SELECT coalesce(sum(value->>1), 0) FROM json_each(?) CROSS JOIN files f"
                                 " ON f.bag_id = ? AND f.path = value->>0"
                                 " WHERE f.last_verified >= ? AND f.last_outcome = 'intact'",
                                 (json.dumps(batch, ensure_ascii=False), bag_id, cutoff))[0][0]
        return total

    def bags_in(self, folder: str) -> list[tuple[str, str]]:
        """(location, name) of the bags directly in `folder` (an absolute location), retired ones left out."""
        prefix = folder.rstrip("/") + "/"
        return self._query("SELECT location, name FROM bags WHERE substr(location, 1, length(?1)) = ?1"
                           " AND instr(substr(location, length(?1) + 1), '/') = 0 AND NOT EXISTS"
                           " (SELECT 1 FROM retirements r WHERE r.bag_id = bags.id AND r.revived IS NULL)"
                           " ORDER BY location", (prefix,))

    def planned_before(self, bag_id: int, audit_id: int, fast: bool = False,
                       vanished: bool = False) -> Optional[set[tuple[str, str]]]:
        """(path, code) of the errors planning found in the latest audit of the bag's life before
        `audit_id` that planned it as this one did (None: no such audit).  Audits plan unlike:
        one that found the bag vanished plans nothing else, and a fast one leaves out what needs
        a checksum (an archive's .sha256 sidecar); so a bag found again is compared with the
        last audit that found it, a full or rolling audit with the last full or rolling one, a
        fast audit with any that found the bag, a vanished bag with any.  Planning rows were
        written with their audit row, so they are all there even while it runs; read by the
        checks_planned index."""
        found = "NOT EXISTS (SELECT 1 FROM checks c WHERE c.audit_id = a.id AND c.planned AND c.code = 'fixity.vanished')"
        before = self._query(
            "SELECT max(a.id) FROM audits a WHERE a.bag_id = ?1 AND a.id < ?2"
            " AND a.started >= coalesce((SELECT max(revived) FROM retirements WHERE bag_id = ?1), '')"
            f" AND (?3 OR {found} AND (?4 OR a.mode != 'fast'))", (bag_id, audit_id, vanished, fast))[0][0]
        if before is None:
            return None
        return set(self._query("SELECT path, code FROM checks WHERE audit_id = ? AND planned"
                               " AND outcome NOT IN ('warning', 'info')", (before,)))

    def retire(self, location: str, when: str, reason: str) -> None:
        """Retire the bag at `location`; UsageError when it is retired already (the unique index
        retirements_open decides, in the transaction: two at once cannot both retire it)."""
        with self.transaction() as db:
            try:
                db.execute("INSERT INTO retirements (bag_id, retired, reason) SELECT id, ?, ? FROM bags"
                           " WHERE location = ?", (when, reason, location))
            except sqlite3.IntegrityError:
                raise UsageError(f"{location}: already retired") from None

    def retirements(self, location: str) -> list[tuple[str, str, Optional[str]]]:
        """(retired, reason, revived) of a bag, oldest first (none in a version-1 registry read as it is)."""
        if self.version == "1":
            return []
        return self._query("SELECT r.retired, r.reason, r.revived FROM retirements r JOIN bags b ON b.id = r.bag_id"
                           " WHERE b.location = ? ORDER BY r.id", (location,))

    def find_bag(self, ref: str) -> list[tuple[str, str]]:
        """(location, name) of bags whose location or name is `ref`."""
        return self._query("SELECT location, name FROM bags WHERE location = ? OR name = ? ORDER BY location",
                           (ref, ref))

    def audits(self, location: str) -> list[AuditRow]:
        """Every audit of a bag; one never finished (interrupted) counts the files its recorded
        checks hashed (those with a size: the problems planning found have none)."""
        unfinished = "CASE WHEN a.finished IS NULL THEN (SELECT {} FROM checks c WHERE c.audit_id = a.id) ELSE {} END"
        rows = self._query(
            "SELECT a.id, b.location, b.name, a.started, a.finished, a.mode, a.outcome,"
            f" {unfinished.format('count(c.size)', 'a.files_checked')},"
            f" {unfinished.format('coalesce(sum(c.size), 0)', 'a.bytes_checked')},"
            " a.files_total, a.bytes_total, a.problems, a.algorithms, a.agent"
            " FROM audits a JOIN bags b ON b.id = a.bag_id WHERE b.location = ? ORDER BY a.started, a.id",
            (location,))
        return [AuditRow(*r) for r in rows]

    def problem_checks(self, audit_id: int) -> list[Check]:
        rows = self._query("SELECT path, outcome, size, seen, expected, code, reason FROM checks"
                           " WHERE audit_id = ? AND outcome != 'intact' ORDER BY path", (audit_id,))
        return [Check(p, o, s, json.loads(se), json.loads(ex), c, r) for p, o, s, se, ex, c, r in rows]

    def count_checks(self, audit_id: int) -> int:
        return self._query("SELECT count(*) FROM checks WHERE audit_id = ?", (audit_id,))[0][0]
