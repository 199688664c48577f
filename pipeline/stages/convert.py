"""convert: copy each original into the bag, write its archival TIFF master(s), prove them.

Per item: read the original once; decode it once; write each frame's master at a temporary name,
read it back with tifffile and compare every sample with the decoded source; only a proven master
gets its final name.  Then copy the original's bytes into the bag, hashing as they are written.
A failed item leaves no file in staging and reports convert.* problems; nothing is raised.

Resumable: a proof record per item (outside the bag, in `<staging>.proofs/`) holds the digests of
the original and of the masters and the item's files and events, and the SHA-256 of its own
content.  On a rerun, an item whose record is intact, whose original has the same sha256 and
whose files in staging still hash to every recorded digest of the run's algorithms is reused
instead of converted again (the normalization event says so); anything else is converted again.
"""
from __future__ import annotations

import hashlib
import json
import os
import ssl
from dataclasses import asdict, replace
from pathlib import Path, PurePath, PurePosixPath

from ..errors import ConversionError, PipelineError, Problem, shown
from ..hashing import hash_bytes, hash_file, write_hashed
from ..decode import open_source
from ..imaging import Source, source_technical, write_master
from .. import publish
from ..model import ORIGINAL, PRESERVATION, Agent, Event, FileInfo, Item, pipeline_agent, software_agent
from ..stage import Context, Stage

ORIGINALS = "data/objects/originals"
PRESERVATION_DIR = "data/objects/preservation"
RECORD_VERSION = 2     # 2: technical data of the original (encoding, ICC name, resolution) and byte order of a master


def frame_paths(path: PurePath, frames: int) -> list[PurePath]:
    """`path` with .tif for one frame; `<stem>.f0001.tif`... for multi-frame sources."""
    if frames == 1:
        return [path.with_suffix(".tif")]
    return [path.with_suffix(f".f{i:04d}.tif") for i in range(1, frames + 1)]


def master_bagpaths(relpath: str, frames: int) -> list[str]:
    """The masters' places in the bag: frame_paths of the original's, under PRESERVATION_DIR."""
    return [f"{PRESERVATION_DIR}/{p.as_posix()}" for p in frame_paths(PurePosixPath(relpath), frames)]


def proofs_dir(ctx: Context) -> Path:
    return publish.proofs_dir(ctx.output, ctx.staging.name)


def _record_path(ctx: Context, item: Item) -> Path:
    return proofs_dir(ctx) / f"{item.id}.json"


def _settings_key(ctx: Context) -> dict:
    from .. import __version__
    s = ctx.settings
    return {"compression": s.compression, "default_resolution": s.default_resolution,
            "algorithms": list(s.algorithms), "record": RECORD_VERSION, "pipeline": __version__}


def record_digest(rec: dict) -> str:
    """SHA-256 of a proof record's canonical JSON (sorted keys, no spaces), its own digest left out."""
    body = {k: v for k, v in rec.items() if k != "record_sha256"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_record(ctx: Context, item: Item) -> dict | None:
    """The item's proof record, or None when it is missing, unreadable or damaged (its
    content no longer has the digest stored in it)."""
    try:
        rec = json.loads(_record_path(ctx, item).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("record_sha256") == record_digest(rec) else None


def _reused(item: Item, ctx: Context, digests: dict[str, str]) -> Item | None:
    """The item as recorded by an earlier run, when everything it wrote is still intact: the
    record is undamaged, made with these settings from this very original, and each file in
    staging hashes (one read, every algorithm of the run) to every digest recorded for it."""
    rec = _read_record(ctx, item)
    if rec is None or rec.get("original_sha256") != digests["sha256"] or rec.get("settings") != _settings_key(ctx):
        return None
    algs = ctx.settings.algorithms
    try:
        files = [FileInfo(**f) for f in [rec["original"], *rec["masters"]]]
    except (KeyError, TypeError):
        return None
    if {a: files[0].checksums.get(a) for a in algs} != {a: digests[a] for a in algs}:
        return None
    for f in files:
        try:
            _, found = hash_file(ctx.staging / f.bagpath, algs)
        except OSError:
            return None
        if found != {a: f.checksums.get(a) for a in algs}:
            return None
    events = []
    for e in rec["events"]:
        e = dict(e, agents=tuple((Agent(**a), role) for a, role in e["agents"]),
                 objects=tuple(tuple(o) for o in e["objects"]))
        if e["type"] == "normalization":
            e["detail"] += ("; reused the master written and proven by an earlier run of this "
                            f"collection (its {', '.join(algs)} re-checked in staging)")
        events.append(Event(**e))
    problems = tuple(Problem(**p) for p in rec["problems"])
    return replace(item, original=files[0], masters=tuple(files[1:]),
                   events=item.events + tuple(events), problems=item.problems + problems)


def _write_record(item: Item, ctx: Context, original_sha256: str, events, problems) -> None:
    rec = {"original_sha256": original_sha256, "settings": _settings_key(ctx),
           "original": asdict(item.original), "masters": [asdict(m) for m in item.masters],
           "events": [asdict(e) for e in events], "problems": [p.as_dict() for p in problems]}
    rec["record_sha256"] = record_digest(rec)
    data = json.dumps(rec, sort_keys=True, ensure_ascii=False).encode("utf-8")
    # Written in place (not temp name + rename): a record cut short by a crash does not parse,
    # and an item without a readable record is simply converted again.
    path = _record_path(ctx, item)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _original_info(item: Item, ctx: Context, source: Source, size: int, checksums: dict) -> FileInfo:
    image = item.image or {}
    fmt = source.format
    return FileInfo(
        role=ORIGINAL, bagpath=f"{ORIGINALS}/{item.relpath}", size=size, checksums=checksums,
        id=ctx.make_id("original", item.relpath),
        mimetype=image.get("mimetype") or fmt.mimetype, format_name=image.get("format_name") or fmt.name,
        format_version=image.get("format_version") or fmt.version, pronom=image.get("pronom") or fmt.pronom,
        original_name=item.relpath,
        technical={"width": source.width, "height": source.height, "mode": source.mode,
                   "frames": source.frames, "decoder": " ".join(source.decoder), **source_technical(source)})


def _digest_event(item: Item, ctx: Context, original: FileInfo) -> Event:
    algs = ", ".join(sorted(original.checksums))
    return Event(
        id=ctx.make_id("event", "message digest calculation", item.relpath),
        type="message digest calculation", datetime=ctx.now(),
        detail=f"{algs} of the original, computed while it was copied into the package",
        outcome="success", outcome_detail="; ".join(f"{k} {v}" for k, v in sorted(original.checksums.items())),
        agents=((pipeline_agent(), "executing program"),
                (software_agent("OpenSSL (Python hashlib)", ssl.OPENSSL_VERSION.split()[1]), "executing program")),
        objects=((original.id, "source"),), extra=dict(original.checksums))


def _per_frame(techs: list[dict], key: str):
    """The masters' value of `key`: one value when every frame has the same, else one per frame."""
    values = [t[key] for t in techs]
    return values[0] if all(v == values[0] for v in values) else values


def _frames_text(texts: list[str]) -> str:
    """One text for every frame, or each frame's, numbered, where the frames differ."""
    return texts[0] if len(set(texts)) == 1 else "; ".join(f"frame {i}: {t}" for i, t in enumerate(texts, 1))


def _normalization_event(item: Item, ctx: Context, source: Source, original: FileInfo,
                         masters: list[FileInfo], techs: list[dict], proven: bool, mismatch: str) -> Event:
    """`techs`: the technical record of every master written, the unproven one included."""
    import tifffile
    tech = techs[0]
    frames = f"{len(masters)} masters, one per frame" if len(masters) > 1 else "one master"
    steps = _frames_text(["; ".join(t["steps"] or ["no palette or orientation step"]) for t in techs])
    resolution = _frames_text([f"{t['x_resolution']}x{t['y_resolution']} per {t['resolution_unit']}"
                               + (" (assumed default)" if t["resolution_assumed"] else "") for t in techs])
    detail = (f"{original.format_name} {source.mode} {source.width}x{source.height} -> baseline TIFF 6.0 "
              f"little-endian, {tech['compression']}, {frames}; {steps}; resolution {resolution}")
    if proven:
        outcome_detail = (f"pixel proof passed: every sample of {len(masters)} master(s), decoded by tifffile, "
                          f"equals the decoded source")
    else:
        outcome_detail = f"pixel proof FAILED: {mismatch}; the master was discarded"
    name, version = source.decoder
    return Event(
        id=ctx.make_id("event", "normalization", item.relpath), type="normalization",
        datetime=ctx.now(), detail=detail, outcome="success" if proven else "failure",
        outcome_detail=outcome_detail,
        agents=((pipeline_agent(), "executing program"), (software_agent(name, version), "executing program"),
                (software_agent("tifffile", tifffile.__version__), "validator")),
        objects=((original.id, "source"), *((m.id, "outcome") for m in masters)),
        extra={"source_pixel_sha256": [m.technical["source_pixel_sha256"] for m in masters],
               "master_pixel_sha256": [m.technical["master_pixel_sha256"] for m in masters],
               "pixel_digest": "sha256 over 'pixels-v1 <dtype> <shape>\\n' + C-contiguous little-endian samples",
               "decoder": f"{name} {version}", "proof_decoder": f"tifffile {tifffile.__version__}",
               "encoder": _encoder(ctx.settings.compression),
               **{key: _per_frame(techs, key) for key in ("orientation_applied", "resolution_assumed",
                                                          "metadata_carried", "metadata_dropped")}})


def _encoder(compression: str) -> str:
    from .. import __version__
    if compression == "deflate":
        import imagecodecs
        return f"preservation-pipeline {__version__} TIFF writer, Deflate by {imagecodecs.deflate_version()}"
    return f"preservation-pipeline {__version__} TIFF writer"


def _warnings(item: Item, source: Source, techs: list[dict]) -> list[Problem]:
    out = [Problem("convert.library_message", item.relpath, m) for m in dict.fromkeys(source.messages)]
    dropped = _per_frame(techs, "metadata_dropped")
    if dropped and isinstance(dropped[0], list):    # frames differ: each frame's, named by its number
        dropped = [f"frame {i}: {d}" for i, ds in enumerate(dropped, 1) for d in ds]
    if dropped:
        out.append(Problem("convert.metadata_dropped", item.relpath,
                           "not carried into the master: " + "; ".join(dropped)))
    if any(t["resolution_assumed"] for t in techs):
        out.append(Problem("convert.resolution_assumed", item.relpath,
                           "no resolution recorded; the default was written into the master"))
    return out


def convert_item(item: Item, ctx: Context) -> Item:
    """Convert and prove one item (see the module docstring).  Never raises for bad input."""
    written: list[Path] = []
    try:
        try:
            data = (ctx.ingest / item.relpath).read_bytes()
        except OSError as exc:
            return replace(item, problems=item.problems + (
                Problem("convert.read", item.relpath, f"cannot read the original: {exc.strerror or exc}"),))
        # One pass over the original for every digest: the bag's and the proof record's sha256.
        digests = hash_bytes(data, dict.fromkeys((*ctx.settings.algorithms, "sha256")))
        reused = _reused(item, ctx, digests)
        if reused is not None:
            return reused
        _forget(item, ctx)
        return _convert(item, ctx, data, digests, written)
    except PipelineError as exc:
        _remove(written)
        return replace(item, problems=item.problems + (exc.problems or (
            Problem("convert.undecodable", item.relpath, str(exc)),)))
    except FileExistsError as exc:
        _remove(written)
        return replace(item, problems=item.problems + (_clash(item, Path(exc.filename2 or "").name),))
    except OSError as exc:
        _remove(written)
        return replace(item, problems=item.problems + (
            Problem("convert.write", item.relpath, f"cannot write into staging: {exc.strerror or exc}"),))


def _claim(dest: Path, bagpath: str, item: Item, ctx: Context) -> None:
    """Claim a master name for this item; refuse a name another item holds.

    The claim is a symbolic link named after the master whose target text is the item's
    relpath: created atomically in one step (as Mercurial's locks are), it survives a crash, so
    a rerun knows a master left in staging is this item's own and replaces it.  A claim whose
    original is no longer in the collection (removed or renamed since) is stale: taken over.
    """
    claims = proofs_dir(ctx) / "claims"
    claims.mkdir(parents=True, exist_ok=True)
    claim = claims / hashlib.sha256(bagpath.encode("utf-8")).hexdigest()
    while True:
        try:
            os.symlink(item.relpath, claim)
            break
        except FileExistsError:
            try:
                owner = os.readlink(claim)
            except FileNotFoundError:
                continue    # removed as stale by another item meanwhile: claim again
            if owner == item.relpath:
                break
            if (ctx.ingest / owner).is_file():
                raise ConversionError(f"{item.relpath}: master name taken", [_clash(item, bagpath, owner)]) from None
            claim.unlink(missing_ok=True)   # stale: removed, then claimed anew (or lost to a live claim);
            # the gone original's staged copy is left to the package stage (package.stale)
    dest.unlink(missing_ok=True)   # this item's own master, or a stale claim's, from an earlier run


def _forget(item: Item, ctx: Context) -> None:
    """Remove what an earlier run wrote for this item (its original has changed or failed)."""
    rec = _read_record(ctx, item)
    try:
        paths = [rec["original"]["bagpath"], *(m["bagpath"] for m in rec["masters"])] if rec else []
    except (KeyError, TypeError):
        paths = []
    for bagpath in paths + [f"{ORIGINALS}/{item.relpath}"]:
        (ctx.staging / bagpath).unlink(missing_ok=True)
    _record_path(ctx, item).unlink(missing_ok=True)


def _clash(item: Item, bagpath: str, owner: str = "") -> Problem:
    other = f"of {shown(owner)!r}" if owner else "of another original"
    return Problem("convert.name_clash", item.relpath,
                   f"the master name {bagpath} is already the master {other} (names that differ only by "
                   "their extension, or a frame's master named like another image's); rename one of them")


def _remove(paths: list[Path]) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _convert(item: Item, ctx: Context, data: bytes, digests: dict[str, str], written: list[Path]) -> Item:
    s = ctx.settings
    source = open_source(data, item.relpath, s.pixel_limit, s.default_resolution)
    bagpaths = master_bagpaths(item.relpath, source.frames)
    masters, techs, proven, mismatch = [], [], True, ""
    for bagpath, frame in zip(bagpaths, source.iter_frames()):
        dest = ctx.staging / bagpath
        _claim(dest, bagpath, item, ctx)
        dest.parent.mkdir(parents=True, exist_ok=True)
        written.append(dest)        # before it exists: removed with the rest if anything fails
        try:
            m = write_master(source, frame, dest, s.compression, s.algorithms)
        except ValueError as exc:   # tiff.encode: over the 4 GiB of a baseline TIFF
            raise ConversionError(f"{item.relpath}: {exc}", [
                Problem("convert.write", item.relpath, f"cannot write the master: {exc}")]) from exc
        del frame
        techs.append(m.technical)
        if not m.proven:
            proven, mismatch = False, f"{bagpath}: {m.mismatch}"
            break
        tech = dict(m.technical, frames=source.frames)
        masters.append(FileInfo(
            role=PRESERVATION, bagpath=bagpath, size=m.size, checksums=m.checksums,
            id=ctx.make_id("preservation", bagpath), mimetype="image/tiff", format_name="TIFF",
            format_version="6.0", pronom="fmt/353", original_name=item.relpath, technical=tech))
    if not proven:
        _remove(written)
        original = _original_info(item, ctx, source, len(data), {"sha256": digests["sha256"]})
        event = _normalization_event(item, ctx, source, original, masters, techs, False, mismatch)
        return replace(item, events=item.events + (event,), problems=item.problems + tuple(_warnings(item, source, techs)) + (
            Problem("convert.proof", item.relpath, f"pixel proof failed: {mismatch}; no master was kept"),))
    original_path = ctx.staging / ORIGINALS / item.relpath
    written.append(original_path)
    size, checksums = write_hashed(original_path, data, s.algorithms,
                                   digests={a: digests[a] for a in s.algorithms})
    original = _original_info(item, ctx, source, size, checksums)
    events = (_digest_event(item, ctx, original),
              _normalization_event(item, ctx, source, original, masters, techs, True, ""))
    warnings = _warnings(item, source, techs)
    item = replace(item, original=original, masters=tuple(masters), events=item.events + events,
                   problems=item.problems + tuple(warnings))
    _write_record(item, ctx, digests["sha256"], events, warnings)
    return item


STAGE = Stage("convert", per_item=convert_item)
