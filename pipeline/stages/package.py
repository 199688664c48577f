"""package: seal the staging folder as a BagIt 1.0 bag (or several) and publish it into output/.

Runs last.  Every payload file is already in `ctx.staging/data/...`, and `package.payload()`
yields each with the checksums computed while it was written, one item at a time.  They go into
a FileTable (an SQLite table on disk, pipeline/filetable.py) once, which sorts them by bag path,
and every step below reads them from there one row at a time: the stage's memory does not grow
with the number of files.  The stage

  1. finishes a publish that a killed run left half done, or refuses when this collection's
     package already exists in output/ (before any work);
  2. checks, by stat alone, that the staging payload is exactly the package's files;
  3. splits the items over several bags when --max-bag-size asks for it (each bag: its items'
     originals and masters, hard-linked from the staging folder, plus a copy of all the metadata
     with a METS of its own; groups are ranges of item indexes, made by plan() so that each
     bag, payload and tag files, and its archive (--serialize) stay within the limit, from what
     the ItemStore keeps of each item in memory; each item is loaded when linked);
  4. writes bagit.txt, bag-info.txt, the manifests (from the recorded checksums) and the tag
     manifests; reads the sealed bag back (all but the payload's bytes: see check_sealed);
  5. moves the sealed bag(s) to output/.staging/<name>.sealed/, writes the serialized copies
     (--serialize) and their .sha256 sidecars there;
  6. makes all of it durable at once (durable.barrier) and renames everything into output/
     (publish.py).
"""
from __future__ import annotations

import os
import shutil
import stat
from contextlib import contextmanager
from dataclasses import replace
from itertools import islice, zip_longest
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from .. import bagwrite, durable, publish, serialize
from ..bag import decode_path, find_manifests, parse_manifest, parse_tags
from ..errors import PackagingError, Problem, errors_in
from ..filetable import LOOKUP, FileTable
from ..hashing import hash_file, write_hashed
from ..itemstore import outline, store_folder
from ..mets import METS_PATH
from ..model import METADATA, FileInfo, Package
from ..partmets import object_shares, write_part_mets
from ..stage import Context, Stage
from .convert import ORIGINALS, PRESERVATION_DIR


CONVERTED = tuple(f"{folder}/" for folder in (ORIGINALS, PRESERVATION_DIR))    # the convert stage's alone
TEMPORARY = (".part", ".proving")    # `.X.part`: hashing and xmlio writes; `.X.tif.proving`: imaging.write_master


def is_leftover(name: str) -> bool:
    """A temporary name of the pipeline's own writers (TEMPORARY) left by a killed run."""
    return name.startswith(".") and name.endswith(TEMPORARY)


def _entries(root: Path) -> Iterator[tuple[str, os.DirEntry]]:
    """Every entry under `root/data` but folders, as (path relative to `root`, entry), read one
    folder entry at a time (os.scandir); links are never followed."""
    if not (root / "data").is_dir():
        return
    stack = ["data"]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel) as entries:
            for entry in entries:
                path = f"{rel}/{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    stack.append(path)
                else:
                    yield path, entry


def _with_recorded_size(root: Path, files: FileTable) -> Iterator[tuple[str, os.DirEntry, Optional[int]]]:
    """`_entries(root)`, each with the size `files` records for it (None: not listed), looked
    up LOOKUP entries at a time."""
    entries = _entries(root)
    while batch := list(islice(entries, LOOKUP)):
        sizes = files.sizes([rel for rel, _ in batch])
        for rel, entry in batch:
            yield rel, entry, sizes.get(rel)


def check_payload(staging: Path, files: FileTable, algorithms: Sequence[str]) -> list[Problem]:
    """Stat-only completeness check: every listed file present with its size; nothing unlisted."""
    problems: list[Problem] = []
    for f in files:
        parts = f.bagpath.split("/")     # not PurePosixPath: it interns every name (a table of them all)
        if parts[0] != "data" or len(parts) < 2 or not {"", ".", ".."}.isdisjoint(parts):
            problems.append(Problem("package.unexpected", f.bagpath, "payload path is not under data/"))
            continue
        lacking = [a for a in algorithms if a not in f.checksums]
        if lacking:
            problems.append(Problem("package.checksum", f.bagpath, f"no {', '.join(lacking)} checksum recorded"))
        try:
            st = os.lstat(os.path.join(staging, f.bagpath))
        except FileNotFoundError:
            problems.append(Problem("package.missing", f.bagpath, "not in the staging folder"))
            continue
        if stat.S_ISLNK(st.st_mode):
            problems.append(Problem("package.symlink", f.bagpath, "is a symbolic link"))
        elif not stat.S_ISREG(st.st_mode):
            problems.append(Problem("package.missing", f.bagpath, "is not a regular file"))
        elif st.st_size != f.size:
            problems.append(Problem("package.size", f.bagpath, f"{st.st_size} bytes, {f.size} recorded"))
    for rel, entry, recorded in _with_recorded_size(staging, files):
        if recorded is not None:
            continue
        if entry.is_symlink():
            problems.append(Problem("package.symlink", rel, "a symbolic link in the payload"))
        elif is_leftover(entry.name):
            os.unlink(entry.path)
        elif rel.startswith(CONVERTED):     # an original or master of a photograph gone since
            os.unlink(entry.path)
            problems.append(Problem("package.stale", rel, "left in staging by an earlier run, for a "
                                    "photograph no longer in the collection; removed"))
        else:
            problems.append(Problem("package.unlisted", rel, "in staging but not part of the package "
                                    "(left by an earlier run? remove the staging folder and rerun)"))
    for entry in sorted(os.listdir(staging)):
        if is_leftover(entry) and (staging / entry).is_file():
            (staging / entry).unlink()
        elif entry != "data" and not bagwrite.is_tag_file_name(entry):
            problems.append(Problem("package.unexpected", entry, "not data/ nor a tag file"))
    return problems


def plan(package: Package, ctx: Context, files: FileTable) -> tuple[list[range], list[Problem]]:
    """The items' groups, one per bag, each bag within --max-bag-size: its payload and its tag
    files, or with --serialize the archive made of it, as serialize.Bound counts them (a
    bound).  Every bag has the fixed part: its copy of every metadata file but the METS, its
    METS without any object (partmets.object_shares), their manifest lines, the tag files but
    the payload manifests (their bag-info the longest a part can have) and their folders.  Each
    item adds its originals and masters, their manifest lines, their share of the METS (its
    files, pointers and administrative sections) and the folders they are in that the bag has
    not yet.  The items are not loaded: an ItemStore keeps what this needs of each (outline)."""
    limit, algorithms, count = ctx.settings.max_bag_size, ctx.settings.algorithms, len(package.items)
    measure = serialize.Bound(ctx.settings.serialize, publish.part_name(package.name, count, count), ctx.started)
    names = ["bagit.txt", "bag-info.txt", *(f"{kind}manifest-{alg}.txt" for kind in ("", "tag") for alg in algorithms)]
    tags = (bagwrite.tag_bytes_bound(_info(package, ctx, files, (ctx.collection_id, count, count)), algorithms)
            + measure.folder("") + sum(measure.grown(name, limit) for name in names))

    def counted(f: FileInfo) -> int:
        return measure.file(f.bagpath, f.size) + bagwrite.manifest_bytes(f.bagpath, algorithms)
    if limit <= 0 or measure.total(tags + sum(map(counted, files)) + sum(
            map(measure.folder, {d for f in files for d in _folders(f.bagpath)}))) <= limit:
        return [range(count)], []
    base, shares = object_shares(ctx.staging / METS_PATH) if METS_PATH in files else (0, {})
    common = {d: measure.folder(d) for f in files.files(METADATA) for d in _folders(f.bagpath)}
    fixed = tags + base + sum(common.values()) + sum(
        counted(f) if f.bagpath != METS_PATH else measure.grown(METS_PATH, limit)
        + bagwrite.manifest_bytes(METS_PATH, algorithms) for f in files.files(METADATA))
    outlined = getattr(package.items, "outline", None) or (lambda index: outline(package.items[index]))
    folders: dict[str, int] = {}

    def cost(index: int) -> tuple[str, int, dict[str, int]]:
        relpath, objects = outlined(index)
        size = sum(measure.file(path, n) + bagwrite.manifest_bytes(path, algorithms) + shares.get(path, 0)
                   for path, n in objects)
        own = {d: folders.get(d) or folders.setdefault(d, measure.folder(d))
               for path, _ in objects for d in _folders(path) if d not in common}
        return relpath, size, own
    return split(count, fixed, limit, cost, measure.total)


def _folders(bagpath: str) -> list[str]:
    """The folders `bagpath` is in, from the bag's top: data, data/objects, ..."""
    parts = bagpath.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


def split(count: int, fixed: int, limit: int, cost: Callable[[int], tuple[str, int, dict[str, int]]],
          total: Callable[[int], int] = int) -> tuple[list[range], list[Problem]]:
    """Items 0..count-1 grouped in order so that each bag stays within `limit`: ranges of item
    indexes.  A bag counts `total(n)` bytes, n its `fixed` bytes plus, for each of its items
    (`cost(index)`: relpath, bytes, the folders it needs with theirs), the item's bytes and
    those of its folders that no item before it in the bag needed.  An item over the limit on
    its own gets a bag of its own (package.oversize)."""
    starts, used, held, warnings = [0], fixed, set(), []
    for index in range(count):
        relpath, size, folders = cost(index)
        alone = size + sum(folders.values())
        if total(fixed + alone) > limit:
            warnings.append(Problem("package.oversize", relpath,
                                    f"a bag of its own is up to {total(fixed + alone)} bytes with its metadata "
                                    f"and tag files (or its archive, with --serialize), over --max-bag-size {limit}"))
        more = size + sum(n for folder, n in folders.items() if folder not in held)
        if index > starts[-1] and total(used + more) > limit:
            starts.append(index)
            used, held, more = fixed, set(), alone
        used += more
        held.update(folders)
    return [range(a, b) for a, b in zip(starts, starts[1:] + [count])], warnings


def link_bag(staging: Path, bag: Path, files: FileTable) -> None:
    """A new bag folder holding `files` of `staging`.  An item's files go into this bag only:
    hard-linked (copied where links fail), they share their inode with staging alone, which
    publish removes.  The metadata every bag carries is copied, never linked nor reflinked:
    parts sharing an inode or its blocks would all be damaged by one write or one bad block."""
    publish.remove_tree(bag)
    for f in files:
        src, dest = staging / f.bagpath, bag / f.bagpath
        dest.parent.mkdir(parents=True, exist_ok=True)
        if f.role != METADATA:
            try:
                os.link(src, dest)
                continue
            except OSError:
                pass
        shutil.copyfile(src, dest)


@contextmanager
def part_payload(ctx: Context, package: Package, files: FileTable, group: range,
                 bag: Path) -> Iterator[FileTable]:
    """One bag of a split package: the originals and masters of the items of `group` and every
    METADATA file (link_bag), with its own METS (partmets: the files of the
    other bags left out).  Yields the bag's own FileTable."""
    def payload() -> Iterator[FileInfo]:
        for index in group:
            yield from package.items[index].objects()
        yield from (f for f in files.files(METADATA) if f.bagpath != METS_PATH)

    with FileTable(store_folder(ctx.output)) as part:
        part.add(payload())
        link_bag(ctx.staging, bag, part)
        if METS_PATH in files:
            size, digests = write_part_mets(ctx.staging / METS_PATH, bag / METS_PATH, part,
                                            ctx.settings.algorithms)
            part.add([FileInfo(METADATA, METS_PATH, size, digests)])
        yield part


def _holds_exactly(bag: Path, top: Sequence[os.DirEntry], files: FileTable) -> bool:
    """data/ holds regular files only, as many as listed, each listed with its size (one walk,
    no listing kept); the top of the bag holds no link nor special file."""
    if not all(e.is_dir(follow_symlinks=False) or e.is_file(follow_symlinks=False) for e in top):
        return False
    count = 0
    for _, entry, recorded in _with_recorded_size(bag, files):
        count += 1
        if not entry.is_file(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_size != recorded:
            return False
    return count == len(files)


def check_sealed(bag: Path, files: FileTable, algorithms: Sequence[str]) -> list[Problem]:
    """The sealed bag read back, without reading the payload: data/ holds exactly the payload
    (stat), bagit.txt, Payload-Oxum, one manifest and tag manifest per algorithm, every manifest
    line decoded back to the right path and checksum, tag manifests right for the tag files."""
    problems: list[Problem] = []

    def bad(path: str, reason: str) -> None:
        problems.append(Problem("package.invalid", path, reason))

    with os.scandir(bag) as entries:
        top = list(entries)     # data/ and the tag files: a few entries
    if not _holds_exactly(bag, top, files):
        bad("data", "does not hold exactly the payload files")
    if (bag / "bagit.txt").read_bytes() != bagwrite.BAGIT_TXT.encode("utf-8"):
        bad("bagit.txt", "not the BagIt 1.0 declaration")
    info = {t.label: t.value for t in parse_tags((bag / "bag-info.txt").read_text(encoding="utf-8"))}
    if info.get("Payload-Oxum") != bagwrite.payload_oxum(files):
        bad("bag-info.txt", f"Payload-Oxum {info.get('Payload-Oxum')!r} does not match the payload")
    wanted = {f"{kind}manifest-{alg}.txt" for alg in algorithms for kind in ("", "tag")}
    manifests = find_manifests(bag)
    if {p.name for p in manifests} != wanted:
        bad(".", f"manifests {sorted(p.name for p in manifests)}, expected {sorted(wanted)}")
    tag_files = sorted(e.name for e in top if e.is_file(follow_symlinks=False)
                       and not e.name.startswith("tagmanifest-"))
    for path in manifests:
        if path.name.startswith("tagmanifest-"):
            manifest = parse_manifest(path)
            lines = {e.path: e.digest for e in manifest.entries}
            expected = {n: hash_file(bag / n, [manifest.algorithm])[1][manifest.algorithm] for n in tag_files}
            same = not manifest.errors and len(lines) == len(manifest.entries) and lines == expected
        else:
            same = _payload_manifest_reads_back(path, files)
        if not same:
            bad(path.name, "does not read back as written")
    return problems


def _payload_manifest_reads_back(path: Path, files: FileTable) -> bool:
    """The payload manifest, streamed line by line (flat memory for any number of files): each
    line is `checksum  path` of the next file in path order, and its path decodes back to the
    bag path (BagIt's percent-encoding of CR, LF and %)."""
    alg = path.name[len("manifest-"):-len(".txt")]
    expected = (bagwrite.manifest_line(f, alg) if alg in f.checksums
                and decode_path(bagwrite.encode_path(f.bagpath)) == f.bagpath else None for f in files)
    try:
        with open(path, encoding="utf-8", newline="") as lines:
            return all(a == b for a, b in zip_longest(lines, expected))
    except UnicodeDecodeError:
        return False


def _description(record: dict, name: str) -> str:
    return str(record.get("description") or record.get("title") or f"Photographs of the collection {name}")


def _info(package: Package, ctx: Context, files: FileTable,
          group: Optional[tuple[str, int, int]]) -> list[tuple[str, str]]:
    record = dict(package.collection.data) if package.collection else {}
    return bagwrite.bag_info(collection=record, identifier=ctx.collection_id,
                             description=_description(record, package.name),
                             date=ctx.started.strftime("%Y-%m-%d"), files=files,
                             organization=ctx.settings.organization, group=group)


def seal(bag: Path, package: Package, ctx: Context, files: FileTable,
         group: Optional[tuple[str, int, int]] = None) -> None:
    bagwrite.write_tag_files(bag, files, _info(package, ctx, files, group), ctx.settings.algorithms)
    problems = check_sealed(bag, files, ctx.settings.algorithms)
    if problems:
        raise PackagingError(f"{package.name}: the sealed bag failed its checks; nothing was published",
                             problems)


def serialize_bag(bag: Path, ctx: Context) -> list[tuple[Path, str]]:
    """Write `<bag>.<ext>` and its `.sha256` sidecar next to the sealed bag."""
    fmt = ctx.settings.serialize
    archive = bag.with_name(bag.name + serialize.EXTENSIONS[fmt])
    digest = serialize.write_archive(bag, archive, fmt, ctx.started)
    sidecar = archive.with_name(archive.name + ".sha256")
    write_hashed(sidecar, serialize.sidecar_text(digest, archive.name).encode("utf-8"), ())
    return [(archive, archive.name), (sidecar, sidecar.name)]


def package_collection(package: Package, ctx: Context) -> Package:
    try:
        return _package(package, ctx)
    except OSError as exc:
        where = exc.filename or ctx.staging
        raise PackagingError(f"{package.name}: {where}: {exc.strerror or exc}; the package was not "
                             "published (a rerun finishes any publish already begun)",
                             [Problem("io.write", str(where), exc.strerror or str(exc))]) from exc


def _package(package: Package, ctx: Context) -> Package:
    done = publish.preflight(ctx.output, package.name)
    if done:
        return replace(package, published=done)
    publish.clear_leftovers(ctx.output, package.name)
    with FileTable(store_folder(ctx.output)) as files:
        files.add(package.payload())
        if not len(files) or not ctx.staging.is_dir():
            raise PackagingError(f"{package.name}: nothing to package (no payload was written)",
                                 [Problem("package.empty", "data", "no payload files")])
        problems = check_payload(ctx.staging, files, ctx.settings.algorithms)
        if errors_in(problems):
            raise PackagingError(f"{package.name}: the staging folder does not hold exactly the package's "
                                 "files; nothing was published", problems)
        groups, warnings = plan(package, ctx, files)
        sealed = publish.sealed_dir(ctx.output, package.name)
        sealed.mkdir(parents=True)
        bags: list[Path] = []
        if len(groups) == 1:
            seal(ctx.staging, package, ctx, files)
            bags.append(sealed / package.name)
            os.rename(ctx.staging, bags[0])  # out of the way of a rerun's stages
        else:
            for number, group in enumerate(groups, start=1):
                bag = sealed / publish.part_name(package.name, number, len(groups))
                with part_payload(ctx, package, files, group, bag) as part:
                    seal(bag, package, ctx, part, (ctx.collection_id, number, len(groups)))
                bags.append(bag)
    moves = [(bag, bag.name) for bag in bags]
    if ctx.settings.serialize:
        for bag in bags:
            moves += serialize_bag(bag, ctx)
    durable.barrier(sealed)     # every byte of the bag(s) on disk before the first rename
    published = publish.publish(ctx.output, package.name, moves)
    return replace(package, published=published, problems=package.problems + tuple(problems) + tuple(warnings))


STAGE = Stage("package", per_item=None, collect=package_collection)
