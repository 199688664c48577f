"""Packages over real files in a staging folder, as the stages before `package` leave them.

Used by tests/stages/test_package.py, tests/test_publish.py and tests/test_serialize.py, and by
the subprocess driver of the kill -9 tests (`python tests/package_helpers.py OUTPUT NAME ...`).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence
from xml.sax.saxutils import escape

import bagit

from pipeline.hashing import write_hashed
from pipeline.mets import href
from pipeline.model import METADATA, ORIGINAL, PRESERVATION, FileInfo, Item, Package, Record
from pipeline.stage import Context, Settings
from pipeline.xmlio import NS

ROOT_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"

COLLECTION = {"identifier": "coll-1", "title": "Test photographs", "creator": "A. Photographer",
              "description": "Photographs made for the tests,\nover two lines.", "rights": "CC0",
              "organization": {"name": "Test Archive", "address": "1 Main Street, Town",
                               "contact_name": "Ann Archivist", "contact_email": "ann@example.org",
                               "contact_phone": "+1 555 0100"}}

# relpath in the collection -> bytes of the original; each gets a "master" of other bytes.
DEFAULT_ORIGINALS = {
    "a.jpg": b"jpeg bytes " * 50,
    "sub/b.png": b"png bytes " * 80,
    "sub/c d.jpg": b"spaces " * 30,
    "caf\u00e9 \u0424\u043e\u0442\u043e.jpg": b"unicode " * 20,
}


def staged_file(ctx: Context, role: str, bagpath: str, data: bytes) -> FileInfo:
    """`data` written into staging at `bagpath`, described as the stages before `package` do."""
    size, digests = write_hashed(ctx.staging / bagpath, data, ctx.settings.algorithms)
    return FileInfo(role=role, bagpath=bagpath, size=size, checksums=digests,
                    id=ctx.make_id(role, bagpath))


def stand_in_mets(files: Sequence[FileInfo]) -> bytes:
    """A METS that names every payload file and nothing else (what `pipeline verify` asks of
    our own bags' METS: mets.undescribed), one `mets:file` each."""
    locations = "".join(f'<mets:file ID="F{n}"><mets:FLocat LOCTYPE="URL" xlink:href="{escape(href(f.bagpath))}"/>'
                        f'</mets:file>' for n, f in enumerate(files))
    return (f'<mets:mets xmlns:mets="{NS["mets"]}" xmlns:xlink="{NS["xlink"]}"><mets:fileSec>'
            f'<mets:fileGrp>{locations}</mets:fileGrp></mets:fileSec></mets:mets>\n').encode()


def build(output: Path, name: str = "coll", originals: Optional[Mapping[str, bytes]] = None,
          settings: Settings = Settings(), collection: Optional[Mapping] = None) -> tuple[Package, Context]:
    """Write originals, masters and metadata into output/.staging/<name>/data and describe them."""
    originals = DEFAULT_ORIGINALS if originals is None else originals
    record = dict(COLLECTION if collection is None else collection)
    ctx = Context.create(settings, output.parent / "ingest" / name, output, name,
                         str(record.get("identifier", "")))
    items = []
    for relpath, data in sorted(originals.items()):
        original = staged_file(ctx, ORIGINAL, f"data/objects/originals/{relpath}", data)
        master = staged_file(ctx, PRESERVATION, f"data/objects/preservation/{relpath}.tif", b"TIFF" + data[::-1])
        items.append(Item(id=ctx.make_id("item", relpath), relpath=relpath, record=None,
                          original=original, masters=(master,)))
    others = (staged_file(ctx, METADATA, "data/metadata/dc.xml", b"<dc/>\n"),
              staged_file(ctx, METADATA, "data/metadata/submitted/collection.json", b"{}\n"))
    described = [f for item in items for f in item.objects()] + list(others)
    meta = (staged_file(ctx, METADATA, "data/metadata/mets.xml", stand_in_mets(described)), *others)
    package = Package(name=name, source=ctx.ingest, collection=Record("collection.json", record),
                      items=tuple(items), metadata_files=meta)
    return package, ctx


def bagit_valid(path: Path) -> bool:
    """bagit-python's full validation (every checksum recomputed)."""
    bagit.Bag(str(path)).validate()
    return True


def pipeline_valid(path: Path, profile: Optional[Path] = None) -> bool:
    """`pipeline verify` (in-process): every checksum, and the profile's rules when given."""
    from pipeline.profile import load_profile
    from pipeline.verify import verify_bag

    report = verify_bag(path, workers=1, profile=load_profile(profile) if profile else None)
    assert report.valid, [p.render() for p in report.problems]
    return True


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes, for byte-identical comparisons."""
    out = {}
    for folder, _, names in os.walk(root):
        for n in names:
            p = Path(folder) / n
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def kill_at_step(n: int) -> list[int]:
    """From now on, count every step that changes the file system (rename, replace, link,
    fsync, unlink, rmdir, rmtree, the no-replace rename) and SIGKILL this process just before
    step `n` (0: never).  Returns the live counter."""
    import shutil
    import signal

    from pipeline import publish

    count = [0]

    def wrap(owner, attr):
        real = getattr(owner, attr)

        def step(*args, **kwargs):
            count[0] += 1
            if count[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        setattr(owner, attr, step)

    for attr in ("rename", "replace", "link", "fsync", "unlink", "rmdir"):
        wrap(os, attr)
    wrap(shutil, "rmtree")
    wrap(publish, "rename_noreplace")
    return count


def main(argv: list[str]) -> int:
    """Driver for the kill -9 and concurrency tests:
    package_helpers.py OUTPUT NAME MAX_BAG_SIZE SERIALIZE ITEMS [KILL_AT]

    Like the executor: takes the lock, finishes a killed publish or refuses an existing bag,
    builds (or rebuilds, as the stages before `package` do on a rerun) the staging payload, then
    runs the package stage.  Prints the published names, and the
    number of file-system steps the stage took on stderr.
    """
    from pipeline.errors import PipelineError
    from pipeline.executor import collection_lock
    from pipeline.publish import preflight
    from pipeline.stages.package import package_collection

    out, name, max_size, fmt, n = Path(argv[0]), argv[1], int(argv[2]), argv[3], int(argv[4])
    kill = int(argv[5]) if len(argv) > 5 else 0
    originals = {f"img{i:03d}.jpg": bytes([i]) * (20_000 + i) for i in range(n)}
    try:
        with collection_lock(out, name):
            finished = preflight(out, name)  # as the executor does before any stage
            if finished:
                print(" ".join(finished))
                return 0
            pkg, context = build(out, name, originals, Settings(max_bag_size=max_size, serialize=fmt))
            pause = os.environ.get("PACKAGE_TEST_PAUSE")
            if pause:  # hold the lock until told to go on
                Path(pause + ".ready").touch()
                while not Path(pause + ".go").exists():
                    time.sleep(0.02)
            steps = kill_at_step(kill)
            result = package_collection(pkg, context)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(" ".join(result.published))
    print(f"steps={steps[0]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
