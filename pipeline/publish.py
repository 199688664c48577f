"""Publishing sealed bags from `output/.staging/` into `output/`, atomically, never overwriting.

    output/.staging/<name>/              the bag under construction (ctx.staging; the stages'
                                         work area, reused by a rerun)
    output/.staging/<name>.sealed/       what is ready to publish: the sealed bag(s) and the
                                         serialized copies with their .sha256 sidecars
    output/.staging/<name>.publish       the journal: what is being moved into output/
    output/.staging/<name>.lock          the executor's lock (one run per collection)
    output/.staging/<name>.proofs/       the convert stage's proof records and master-name
                                         claims, for a rerun's reuse (stages/convert.py)

Everything is built and checked in `.staging/` (same file system as `output/`), then moved with
rename(2), which is atomic: each bag, archive and sidecar appears in `output/` whole or not at
all.  A package's names are renamed one after another (no order makes a partial set whole: a
sidecar without its archive is no better than the reverse), so the list of moves is written to a
journal first (fsynced); a run killed between two renames leaves some of the names and the
journal, which says the publish is in progress, and the next run finishes those renames before
anything else (`preflight`).  Sealed things wait in their own
folder, so that a rerun's stages, working in `<name>/` again, cannot change them.  A name that
already exists in `output/` is never replaced: the rename itself refuses (renameat2
RENAME_NOREPLACE where the kernel has it).
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterable, Sequence

from .bag import read_tag_file
from .errors import PackagingError, Problem
from .hashing import write_hashed

SUFFIXES = (".tar", ".tar.gz", ".zip", ".tar.sha256", ".tar.gz.sha256", ".zip.sha256")
SEALED = ".sealed"
PROOFS = ".proofs"
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def staging_root(output: Path) -> Path:
    return Path(output) / ".staging"


def journal_path(output: Path, name: str) -> Path:
    return staging_root(output) / f"{name}.publish"


def sealed_dir(output: Path, name: str) -> Path:
    return staging_root(output) / f"{name}{SEALED}"


def proofs_dir(output: Path, name: str) -> Path:
    """Where the convert stage keeps its proof records and claims (outside the bag)."""
    return staging_root(output) / f"{name}{PROOFS}"


def part_name(name: str, number: int, count: int) -> str:
    return f"{name}-{number}-of-{count}"


def is_own_name(output: Path, name: str, candidate: str) -> bool:
    """True when `candidate`, in `output`, is something this collection publishes: `name` itself
    (bag, archive, sidecar) or one of its split parts `name-K-of-N`.  A name of that shape may
    as well be another collection's own name (a collection `box-1-of-2` beside `box`): it is a
    part of `name` only when the bag folder of that name records itself as part K of N
    (Bag-Count; an unsplit bag has none).  With no such bag to read (an archive alone, a stray
    file), the name decides: better a refusal than an overwrite."""
    stem = candidate
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if candidate.endswith(suffix):
            stem = candidate[: -len(suffix)]
            break
    part = re.fullmatch(re.escape(name) + r"-(\d+)-of-(\d+)", stem)
    if part is None:
        return stem == name
    info = Path(output) / stem / "bag-info.txt"
    try:
        tags = read_tag_file(info) if info.is_file() else None
    except (OSError, UnicodeDecodeError):
        tags = None
    return tags is None or ("Bag-Count", f"{part[1]} of {part[2]}") in tags


def existing_targets(output: Path, name: str) -> list[str]:
    output = Path(output)
    if not output.is_dir():
        return []
    return sorted(e.name for e in os.scandir(output) if is_own_name(output, name, e.name))


def refuse_existing(output: Path, name: str, found: Sequence[str]) -> PackagingError:
    problems = [Problem("output.exists", f, f"already in {output}; an existing package is never "
                        "overwritten (move it away to package this collection again)") for f in found]
    return PackagingError(f"{name}: {found[0]} already exists in {output}; nothing was overwritten",
                          problems)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _renameat2():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


def rename_noreplace(src: Path, dst: Path) -> None:
    """rename(2) that fails with FileExistsError instead of replacing `dst`."""
    fn = _renameat2()
    if fn is not None:
        if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), str(dst))
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(src))
    if os.path.lexists(dst):  # the file system has no RENAME_NOREPLACE: check, then rename
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def preflight(output: Path, name: str) -> tuple[str, ...]:
    """Before a run does any work: finish a publish a killed run left half done (returns what it
    published), or refuse when this collection's package is already in `output/`.  A bag sealed
    by a killed run but never journaled goes back to the work area, for the stages to reuse."""
    if journal_path(output, name).exists():
        return finish(output, name)
    found = existing_targets(output, name)
    if found:
        raise refuse_existing(output, name, found)
    sealed, work = sealed_dir(output, name) / name, staging_root(output) / name
    if sealed.is_dir() and not os.path.lexists(work):
        os.rename(sealed, work)  # sealed but never published: back to the stages, who reuse its files
    return ()


def publish(output: Path, name: str, moves: Iterable[tuple[Path, str]]) -> tuple[str, ...]:
    """Move each `(path in the sealed folder, name in output)` into `output/`; all or, after a
    crash, the rest on the next run."""
    output = Path(output)
    root = staging_root(output)
    entries = [[Path(src).relative_to(root).as_posix(), dst] for src, dst in moves]
    found = [dst for _, dst in entries if os.path.lexists(output / dst)]
    if found:
        raise refuse_existing(output, name, found)
    write_hashed(journal_path(output, name), json.dumps({"moves": entries}, indent=1).encode(), (), fsync=True)
    fsync_dir(root)
    return finish(output, name)


def finish(output: Path, name: str) -> tuple[str, ...]:
    """Carry out the journal's renames that are not done yet; then drop journal and staging."""
    output = Path(output)
    root = staging_root(output)
    journal = journal_path(output, name)
    try:
        moves = json.loads(journal.read_text(encoding="utf-8"))["moves"]
    except (OSError, ValueError, KeyError) as exc:
        raise PackagingError(f"{journal}: unreadable publish journal ({exc}); remove it and rerun") from exc
    for src, dst in moves:
        source, target = root / src, output / dst
        if not os.path.lexists(source) and os.path.lexists(target):
            continue  # moved before the crash
        try:
            rename_noreplace(source, target)
        except FileExistsError as exc:
            raise refuse_existing(output, name, [dst]) from exc
        except OSError as exc:
            raise PackagingError(f"{dst}: could not move into {output}: {exc.strerror or exc} "
                                 f"(to package afresh instead, remove {journal})") from exc
    fsync_dir(output)
    remove_tree(sealed_dir(output, name))
    remove_tree(root / name)  # the stages' work area: done with
    remove_tree(proofs_dir(output, name))  # published: nothing left to resume
    journal.unlink()  # last: until here, a rerun finishes this publish
    fsync_dir(root)
    return tuple(dst for _, dst in moves)


def clear_leftovers(output: Path, name: str) -> None:
    """Remove what a killed run sealed but never got to publish (no journal was written).
    Call with the collection's lock held."""
    remove_tree(sealed_dir(output, name))
