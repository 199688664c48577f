"""discover: walk a collection folder and pair each image with its record.  Writes nothing.

Layout (README, "Input layout"):

    collection.json                  the collection record
    [sub/folders/]<name>.<ext>       one image
    [same folder]/<name>.json        its record (sidecar)
    metadata.csv                     optional: one row per image, first column `filename`

Every regular file is a record or an image; the validate stage decides by content whether an
image is one.  Policies (each reported with its code):
  * symbolic links are never followed: `path.outside` when they point out of the collection,
    `path.symlink` otherwise;
  * operating-system litter (.DS_Store, Thumbs.db, desktop.ini, ._*, __MACOSX/...) is left out
    with a warning, `file.system`; any other hidden name (starting with ".") is an error,
    `file.hidden`, because nobody can see what it holds;
  * names with control characters or bytes that are not UTF-8 are errors and left out.
"""
from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from dataclasses import replace
from pathlib import Path, PurePosixPath

from ..errors import Problem, shown
from ..model import Item, Package, Record
from ..stage import Context, Stage

COLLECTION_RECORD = "collection.json"
METADATA_CSV = "metadata.csv"

SYSTEM_NAMES = {".ds_store", "thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r", ".localized",
                "__macosx", ".spotlight-v100", ".trashes", ".fseventsd", ".temporaryitems",
                "$recycle.bin", "system volume information"}

# Bytes in one file name (ext4, XFS, Btrfs, APFS).  The longest name the pipeline derives from an
# image's while it writes the bag is the temporary name of a multi-frame master of an image without
# extension, ".<name>.f0001.tif.proving" (convert.frame_paths, imaging.write_master): 19 bytes more
# (".<name>.dcterms.xml.part", describe.dc_paths and xmlio, is 18; a record's copy ".<name>.part", 6).
NAME_MAX = 255
IMAGE_NAME_MAX = NAME_MAX - len(".") - len(".f0001.tif.proving")

# metadata.csv columns (Archivematica style) -> item record fields; list fields take repeated columns.
CSV_COLUMNS = {
    "dc.identifier": "identifier", "dc.title": "title", "dc.creator": "creator", "dc.date": "date",
    "date_original": "date_original", "dc.coverage": "place", "dcterms.spatial": "place",
    "dc.description": "caption", "dc.subject": "subjects", "dc.rights": "rights",
    "dc.source": "source", "dc.language": "language", "notes": "notes",
}
LIST_FIELDS = {"place", "subjects"}


def is_system(name: str) -> bool:
    return name.lower() in SYSTEM_NAMES or name.startswith("._")


def name_fault(name: str) -> tuple[str, str] | None:
    """(code, reason) when a file or folder name cannot travel in a bag, else None."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "name.encoding", "the name is not valid UTF-8"
    bad = sorted({c for c in name if unicodedata.category(c) == "Cc"})
    if bad:
        return "name.control", f"the name holds control characters ({', '.join(f'U+{ord(c):04X}' for c in bad)})"
    if "\\" in name:
        return "name.backslash", ("the name holds a backslash, which other systems and BagIt manifests read "
                                  "as a folder separator")
    return None


def _name_problem(rel: str, name: str) -> Problem | None:
    fault = name_fault(name)
    return Problem(fault[0], shown(rel), f"{fault[1]}; rename the file") if fault else None


def _symlink_problem(root: Path, rel: str) -> Problem:
    target = os.path.realpath(root / rel)
    inside = os.path.commonpath([target, os.path.realpath(root)]) == os.path.realpath(root)
    if not inside:
        return Problem("path.outside", rel, "symbolic link pointing outside the collection; links are not followed")
    return Problem("path.symlink", rel, "symbolic link; links are not followed: put the file itself here")


def walk(root: Path) -> tuple[list[str], list[Problem]]:
    """Regular files of the collection (POSIX paths relative to root) and the problems of the walk."""
    files: list[str] = []
    problems: list[Problem] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(root / rel_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            problems.append(Problem("io.read", rel_dir or ".", f"cannot list the folder: {exc.strerror}"))
            continue
        for entry in entries:
            name = entry.name
            rel = f"{rel_dir}/{name}" if rel_dir else name
            bad_name = _name_problem(rel, name)
            if is_system(name):  # before the name check: macOS writes "Icon\r"
                problems.append(Problem("file.system", shown(rel), "operating-system file, left out"))
            elif bad_name:
                problems.append(bad_name)
            elif entry.is_symlink():
                problems.append(_symlink_problem(root, rel))
            elif name.startswith("."):
                problems.append(Problem("file.hidden", rel, "hidden file or folder; remove or rename it"))
            elif entry.is_dir(follow_symlinks=False):
                stack.append(rel)
            elif entry.is_file(follow_symlinks=False):
                files.append(rel)
            else:
                problems.append(Problem("file.not_regular", rel, "not a regular file (device, pipe or socket)"))
    return sorted(files), problems


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def load_object(root: Path, rel: str) -> tuple[dict | None, Problem | None]:
    """A record file that must hold one JSON object."""
    data, problem = load_json(root, rel)
    if problem is None and not isinstance(data, dict):
        return None, Problem("record.json", rel, "a record must be one JSON object {...}")
    return data, problem


def read_text(root: Path, rel: str) -> tuple[str | None, Problem | None]:
    try:
        raw = (root / rel).read_bytes()
    except OSError as exc:
        return None, Problem("io.read", rel, f"cannot read: {exc.strerror}")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        return None, Problem("record.encoding", rel, f"not UTF-8 (byte {exc.start})")


def load_json(root: Path, rel: str) -> tuple[object, Problem | None]:
    """A record file parsed strictly (no duplicate keys, no NaN), or None and the problem."""
    text, problem = read_text(root, rel)
    if problem:
        return None, problem
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant), None
    except json.JSONDecodeError as exc:
        return None, Problem("record.json", rel, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except (ValueError, RecursionError) as exc:
        return None, Problem("record.json", rel, f"not valid JSON: {exc}")


def safe_relpath(name: str) -> str | None:
    """A CSV filename as a relative POSIX path inside the collection, or None when it leaves it."""
    name = name.replace("\\", "/")
    path = PurePosixPath(name)
    drive = len(name) > 2 and name[0].isalpha() and name[1] == ":" and name[2] == "/"   # C:\x, C:/x
    if path.is_absolute() or drive or ".." in path.parts:
        return None
    return str(path)


def read_csv(root: Path, rel: str = METADATA_CSV) -> tuple[list[tuple[str, Record]], list[Problem]]:
    """metadata.csv as (filename, Record) pairs; each Record's data has the item-record shape."""
    text, problem = read_text(root, rel)
    if problem:
        return [], [problem]
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
        if not header or header[0] != "filename":
            return [], [Problem("csv.header", rel, "the first column must be 'filename'", "row 0, column 1")]
        for col in header[1:]:
            if col not in CSV_COLUMNS:
                problems.append(Problem("csv.column", rel, f"unknown column; known: {', '.join(CSV_COLUMNS)}",
                                        f"column {shown(col)}"))
            elif CSV_COLUMNS[col] not in LIST_FIELDS and sum(CSV_COLUMNS.get(h) == CSV_COLUMNS[col] for h in header) > 1:
                problems.append(Problem("csv.column", rel, "this field may appear in one column only",
                                        f"column {shown(col)}"))
        rows: list[tuple[str, Record]] = []
        for n, row in enumerate(reader, start=1):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                problems.append(Problem("csv.row", rel, f"{len(row)} cells, the header has {len(header)}", f"row {n}"))
                continue
            data: dict = {}
            for col, cell in zip(header[1:], row[1:]):
                field = CSV_COLUMNS.get(col)
                if field is None or not cell.strip():
                    continue
                if field in LIST_FIELDS:
                    data.setdefault(field, []).append(cell)
                else:
                    data[field] = cell
            rows.append((row[0], Record(rel, data, row=n)))
    except csv.Error as exc:
        problems.append(Problem("csv.row", rel, f"not readable as CSV: {exc}", f"line {reader.line_num}"))
        return [], problems
    return rows, problems


def _stem_key(rel: str) -> tuple[str, str]:
    """(folder, name without its last extension), as PurePosixPath's parent and stem would give,
    from the string (a PurePosixPath interns every part of every name it parses)."""
    folder, _, name = rel.rpartition("/")
    dot = name.rfind(".")
    return folder or ".", name[:dot] if 0 < dot < len(name) - 1 else name


def _nfc(key: tuple[str, str]) -> str:
    return unicodedata.normalize("NFC", "/".join(key))


def _pair_sidecars(images: list[str], sidecars: list[str]):
    """image relpath -> Record of its sidecar, paired by name and not read yet (the validate
    stage reads each in its workers: discovery never holds the collection's records); plus the
    Records (paths only) of the sidecars paired with no image, and the pairing problems.

    A sidecar whose name matches no image's exactly finds it by the names' NFC forms (macOS
    writes NFD, Linux NFC), when that form names one image only, not claimed exactly already."""
    by_key: dict[tuple[str, str], list[str]] = {}
    for image in images:
        by_key.setdefault(_stem_key(image), []).append(image)
    paired: dict[str, Record] = {}
    records: list[Record] = []
    problems: list[Problem] = []
    claimed: set[str] = set()

    def pair(rel: str, owners: list[str]) -> None:
        claimed.update(owners)
        twice = len(owners) == 1 and owners[0] in paired    # a.json and a.JSON beside a.jpg
        if len(owners) != 1 or twice:
            records.append(Record(rel, {}))
        if twice:
            problems.append(Problem("record.duplicate", rel, f"{shown(owners[0])!r} is also described by "
                                                             f"{shown(paired[owners[0]].path)!r}"))
        elif not owners:
            problems.append(Problem("record.no_image", rel, "no image with this name beside this record"))
        elif len(owners) > 1:
            problems.append(Problem("record.ambiguous", rel, f"could belong to {', '.join(owners)}; "
                                                            "give each image its own name"))
        else:
            paired[owners[0]] = Record(rel, {}, loaded=False)

    for rel in sidecars:                # exact names first: they claim their images
        if _stem_key(rel) in by_key:
            pair(rel, by_key[_stem_key(rel)])
    by_nfc: dict[str, list[str]] | None = None      # built only when some sidecar needs it
    for rel in sidecars:
        if _stem_key(rel) not in by_key:
            if by_nfc is None:
                by_nfc = {}
                for key, owners in by_key.items():
                    by_nfc.setdefault(_nfc(key), []).extend(owners)
            alike = by_nfc.get(_nfc(_stem_key(rel)), [])
            pair(rel, alike if len(alike) == 1 and alike[0] not in claimed else [])
    return paired, records, problems, claimed


def _too_long(images: list[str]) -> list[Problem]:
    """Images whose names leave no room for the names the pipeline derives from them (the bag
    would fail after the work); they stay paired, so that nothing else is reported for them."""
    out = []
    for rel in images:
        size = len(rel.rpartition("/")[2].encode("utf-8"))     # names not UTF-8 are left out before
        if size > IMAGE_NAME_MAX:
            out.append(Problem("name.too_long", rel, f"the name is {size} bytes, at most {IMAGE_NAME_MAX}: the pipeline "
                                                     f"names files after it with up to {NAME_MAX - IMAGE_NAME_MAX} bytes "
                                                     f"more, and a file name holds {NAME_MAX}; rename the file"))
    return out


def _pair_csv(rows: list[tuple[str, Record]], images: list[str]):
    exact = set(images)
    nfc: dict[str, list[str]] = {}
    for image in images:
        nfc.setdefault(unicodedata.normalize("NFC", image), []).append(image)
    paired: dict[str, Record] = {}
    problems: list[Problem] = []
    for filename, record in rows:
        where = f"row {record.row}, column filename"
        rel = safe_relpath(filename) if filename.strip() else ""
        if rel is None:
            problems.append(Problem("path.outside", record.path, f"{shown(filename)!r} leaves the collection", where))
            continue
        if not rel:
            problems.append(Problem("csv.row", record.path, "the filename is empty", where))
            continue
        match = rel if rel in exact else None
        if match is None and len(nfc.get(unicodedata.normalize("NFC", rel), [])) == 1:
            match = nfc[unicodedata.normalize("NFC", rel)][0]
        if match is None:
            problems.append(Problem("record.no_image", record.path, f"no image {shown(rel)!r} in the collection", where))
        elif match in paired:
            problems.append(Problem("record.duplicate", record.path,
                                    f"{shown(rel)!r} is also described in row {paired[match].row}", where))
        else:
            paired[match] = record
    return paired, problems


def discover(package: Package, ctx: Context) -> Package:
    root = Path(package.source)
    files, problems = walk(root)
    records: list[Record] = []
    collection = None
    if COLLECTION_RECORD in files:
        data, problem = load_object(root, COLLECTION_RECORD)
        if problem:
            problems.append(problem)
        else:
            collection = Record(COLLECTION_RECORD, data)
            records.append(collection)
            ident = collection.data.get("identifier")
            if isinstance(ident, str) and ident:
                ctx = replace(ctx, collection_id=ident)
    else:
        problems.append(Problem("collection.missing", COLLECTION_RECORD, "no collection record at the collection's root"))

    sidecars = [f for f in files if f.lower().endswith(".json") and f != COLLECTION_RECORD]
    not_images = set(sidecars) | {COLLECTION_RECORD, METADATA_CSV}
    images = [f for f in files if f not in not_images]
    problems.extend(_too_long(images))
    by_sidecar, sidecar_records, sidecar_problems, claimed = _pair_sidecars(images, sidecars)
    records.extend(sidecar_records)
    problems.extend(sidecar_problems)
    by_row: dict[str, Record] = {}
    if METADATA_CSV in files:
        rows, csv_problems = read_csv(root)
        problems.extend(csv_problems)
        by_row, pair_problems = _pair_csv(rows, images)
        problems.extend(pair_problems)
        records.append(Record(METADATA_CSV, {"rows": len(rows)}))
        claimed.update(by_row)

    items = []
    for rel in images:
        record = by_sidecar.get(rel) or by_row.get(rel)
        if rel in by_sidecar and rel in by_row:
            problems.append(Problem("record.duplicate", rel, f"described twice: by {by_sidecar[rel].path} and "
                                                             f"by row {by_row[rel].row} of {METADATA_CSV}"))
        elif rel not in claimed:
            sidecar = f"{_stem_key(rel)[1]}.json"
            how = (f"rename it ({COLLECTION_RECORD} beside it is the collection's record) or add a row in "
                   if "/" not in rel and sidecar == COLLECTION_RECORD else f"add {sidecar} beside it or a row in ")
            problems.append(Problem("item.no_record", rel, f"no record: {how}{METADATA_CSV}"))
        items.append(Item(id=ctx.make_id("item", rel), relpath=rel, record=record))
    if not images:
        problems.append(Problem("collection.empty", ".", "the collection holds no images"))
    # The package lists the record files no item carries, by path only: the contents travel with
    # the collection, and each sidecar with its item (kept on disk between stages), not here.
    records = [Record(r.path, {}) for r in records]
    return replace(package, collection=collection, items=tuple(items), records=tuple(records),
                   problems=package.problems + tuple(problems))


STAGE = Stage("discover", per_item=None, collect=discover, writes=False)
