"""`pipeline fixity` over many bags: what an audit holds open must not grow with the number of bags."""
import gc
import sqlite3

from pipeline.fixity import Budget, audit
from test_fixity import write_bag

SMALL = {"data/a.txt": b"alpha\n", "data/b.txt": b"beta\n"}


def open_connections() -> int:
    """SQLite connections alive and open in this process (a closed one refuses every call)."""
    count = 0
    for obj in gc.get_objects():
        if isinstance(obj, sqlite3.Connection):
            try:
                obj.in_transaction
            except sqlite3.ProgrammingError:
                continue
            count += 1
    return count


def most_open_while_hashing(tmp_path, bags: int, budget: Budget) -> int:
    store = tmp_path / f"store{bags}"
    for i in range(bags):
        write_bag(store / f"bag{i:03}", SMALL, algorithms=("sha256",))
    seen = [0]

    def progress(stage, done, total):
        seen[0] = max(seen[0], open_connections())

    report = audit(output=store, budget=budget, workers=1, progress=progress)
    assert report.exit_code == 0 and len(report.bags) == bags
    return seen[0]


def test_rolling_audit_holds_no_plan_database_per_bag(tmp_path):
    # before: each bag's plan database (a connection and its page cache, ~185 KB) stayed open
    # until the end of a rolling audit, so memory grew with the number of bags
    few = most_open_while_hashing(tmp_path, 3, Budget(percent=10))
    many = most_open_while_hashing(tmp_path, 12, Budget(percent=10))
    assert few == many


def test_full_audit_holds_no_plan_database_per_bag(tmp_path):
    assert most_open_while_hashing(tmp_path, 3, Budget()) == most_open_while_hashing(tmp_path, 12, Budget())
