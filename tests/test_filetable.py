"""pipeline/filetable.py: a bag's payload files in a throwaway SQLite table (real SQLite, on disk)."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from pipeline.errors import PackagingError
from pipeline.filetable import BATCH, FileTable
from pipeline.model import METADATA, ORIGINAL, FileInfo


def info(path: str, size: int = 1, role: str = ORIGINAL) -> FileInfo:
    return FileInfo(role=role, bagpath=path, size=size,
                    checksums={"sha256": f"{size:064x}", "sha512": f"{size:0128x}"})


def leftovers(folder):
    return sorted(p.name for p in folder.glob(".files-*")) if folder.exists() else []


# Any Unicode a str can carry into SQLite's UTF-8 (lone surrogates cannot be encoded at all).
paths = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(paths, st.integers(min_value=0, max_value=2**62), min_size=1, max_size=30))
def test_iteration_is_in_python_sorted_order_with_every_answer(tmp_path, sizes):
    with FileTable(tmp_path) as table:
        table.add(info(p, n) for p, n in sizes.items())
        listed = list(table)
        assert [f.bagpath for f in listed] == sorted(sizes)
        assert [f.size for f in listed] == [sizes[p] for p in sorted(sizes)]
        assert all(f == info(f.bagpath, f.size) for f in listed), "role, size and checksums kept"
        assert len(table) == len(sizes) and table.total_size() == sum(sizes.values())
        assert table.sizes(list(sizes)) == sizes and all(p in table for p in sizes)
        assert table.sizes([min(sizes) + "\x00"]) == {} and (min(sizes) + "\x00") not in table
    assert leftovers(tmp_path) == []


def test_role_filter_and_batches(tmp_path):
    many = [info(f"data/objects/{i:06d}.jpg", i) for i in range(BATCH * 2 + 7)]
    meta = [info("data/metadata/mets.xml", 5, METADATA), info("data/metadata/dc.xml", 3, METADATA)]
    with FileTable(tmp_path) as table:
        table.add(reversed(many + meta))
        assert len(table) == len(many) + 2
        assert [f.bagpath for f in table.files(METADATA)] == ["data/metadata/dc.xml", "data/metadata/mets.xml"]
        assert table.total_size(METADATA) == 8 and table.total_size(ORIGINAL) == sum(range(len(many)))
        table.add([info("data/metadata/late.xml", 1, METADATA)])   # more rows later: still one table
        assert len(table) == len(many) + 3 and table.total_size(METADATA) == 9, "counted again after add"


def test_package_duplicate_names_every_repeated_path(tmp_path):
    files = [info("data/b"), info("data/a"), info("data/b"), info("data/c"), info("data/a"), info("data/a")]
    with pytest.raises(PackagingError) as err:
        with FileTable(tmp_path) as table:
            table.add(files)
    assert [(p.code, p.path) for p in err.value.problems] == [("package.duplicate", "data/a"),
                                                             ("package.duplicate", "data/b")]
    assert str(err.value).startswith("data/a: listed more than once") and "\n" not in str(err.value)
    assert leftovers(tmp_path) == [], "the database is removed after a failure"


def open_databases(folder) -> list[str]:
    """The files of `folder` this process holds open (the table's, unlinked: "... (deleted)")."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:   # listdir's own descriptor, closed since
            continue
        if link.startswith(f"{folder}/.files-"):
            found.append(link)
    return found


def test_database_is_unlinked_while_open_and_closed_after(tmp_path):
    folder = tmp_path / "output" / ".staging"
    with pytest.raises(RuntimeError):
        with FileTable(folder) as table:
            table.add(info(f"data/{i}") for i in range(BATCH + 1))
            assert len(table) == BATCH + 1
            assert leftovers(folder) == [], "no name in the folder, even while in use (kill -9 leaves none)"
            assert [link.endswith(" (deleted)") for link in open_databases(folder)] == [True]
            raise RuntimeError("a failure in the middle")
    assert open_databases(folder) == [], "closed after a failure"
    (folder / ".files-killed.db").write_bytes(b"left by a run killed before it unlinked it")
    with FileTable(folder) as table:
        table.add([info("data/x")])
    assert open_databases(folder) == [] and leftovers(folder) == []


def test_an_unusable_folder_is_a_one_line_packaging_error(tmp_path):
    blocker = tmp_path / "output"
    blocker.write_text("a file where the staging area should be")
    with pytest.raises(PackagingError) as err:
        FileTable(blocker / ".staging")
    assert str(blocker) in str(err.value) and "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["output"]
