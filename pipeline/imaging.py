"""Canonical pixels, archival TIFF masters and their proof; library noise captured.

Canonical pixel data (what `pixel_digest` hashes): the decoded frame after the stated palette and
orientation steps as a C-contiguous numpy array, little-endian, one element per sample (bilevel
images as one bool byte, 0 or 1, per pixel), prefixed by `pixels-v1 <dtype> <shape>\\n`.
Sources are decoded by `pipeline.decode`; masters are written by `pipeline.tiff` and read back by
tifffile, an independent decoder, for the proof.
"""
from __future__ import annotations

import hashlib
import io
import logging
import mmap
import os
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import durable, tiff
from .xmlio import xml_safe
from .exif import Metadata
from .formats import Format

# --------------------------------------------------------------------------------------------
# Library noise: warnings and C-level stderr become messages of the item's report.


LIBRARY_LOGGERS = ("tifffile", "imagecodecs", "PIL")


class _ListHandler(logging.Handler):
    def __init__(self, records: list) -> None:
        super().__init__(logging.WARNING)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# File descriptor 2, the warnings filters and the library loggers belong to the process: one capture at a time, so that
# threads (Dask workers run several) never restore each other's descriptors out of order.
_CAPTURE = threading.RLock()


@contextmanager
def captured(messages: list[str], pixel_limit: int | None = None) -> Iterator[None]:
    """Collect Python warnings and anything C libraries write to file descriptor 2.

    With `pixel_limit`, Pillow's own decompression-bomb limit (it refuses images above twice
    `Image.MAX_IMAGE_PIXELS`) follows --pixel-limit meanwhile, in validation and conversion
    alike: a process-wide setting, which the same lock keeps other threads off.
    """
    with _CAPTURE, _pillow_limit(pixel_limit), _collected(messages):
        yield


@contextmanager
def _pillow_limit(limit: int | None) -> Iterator[None]:
    if limit is None:
        yield
        return
    from PIL import Image
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


@contextmanager
def _collected(messages: list[str]) -> Iterator[None]:
    records: list[logging.LogRecord] = []
    handler = _ListHandler(records)
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.stderr.flush()
        saved = os.dup(2)
        propagate = [lg.propagate for lg in loggers]
        for lg in loggers:
            lg.addHandler(handler)
            lg.propagate = False
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                for lg, prop in zip(loggers, propagate):
                    lg.removeHandler(handler)
                    lg.propagate = prop
                messages.extend(r.getMessage() for r in records)
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                text = sink.read(64 * 1024).decode("utf-8", "replace")
                messages.extend(line.strip() for line in text.splitlines() if line.strip())
    messages.extend(f"{w.category.__name__}: {w.message}" for w in caught
                    if w.category.__name__ != "DecompressionBombWarning")


# --------------------------------------------------------------------------------------------
# Pixels.


def _canonical(pixels: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(pixels)
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and sys.byteorder == "big"):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr


def _digest_of(pixels: np.ndarray) -> "hashlib._Hash":
    """A sha256 started with the canonical header of `pixels` (dtype, shape), no samples yet."""
    shape = "x".join(str(n) for n in pixels.shape)
    return hashlib.sha256(f"pixels-v1 {_canonical(pixels[:0]).dtype.str} {shape}\n".encode())


def pixel_digest(pixels: np.ndarray) -> str:
    """sha256 of the canonical pixel data (see the module docstring)."""
    h = _digest_of(pixels)
    h.update(memoryview(_canonical(pixels)).cast("B"))
    return h.hexdigest()


# EXIF Orientation -> (transform applied to bake it in, as numpy on an (H, W[, S]) array)
ORIENTATIONS: dict[int, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    1: ("none", lambda a: a),
    2: ("mirror horizontal", lambda a: a[:, ::-1]),
    3: ("rotate 180", lambda a: a[::-1, ::-1]),
    4: ("mirror vertical", lambda a: a[::-1]),
    5: ("transpose (mirror horizontal, rotate 270 clockwise)", lambda a: a.swapaxes(0, 1)),
    6: ("rotate 90 clockwise", lambda a: np.rot90(a, -1)),
    7: ("transverse (mirror horizontal, rotate 90 clockwise)", lambda a: a[::-1, ::-1].swapaxes(0, 1)),
    8: ("rotate 270 clockwise", lambda a: np.rot90(a, 1)),
}


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    name, fn = ORIENTATIONS.get(orientation, ORIENTATIONS[1])
    return pixels if orientation == 1 else np.ascontiguousarray(fn(pixels))


@dataclass
class Page:
    """What one frame carries into its master: its metadata and resolution.  A multi-page TIFF's
    pages each have their own (their own IFD); the frames of other sources share the source's."""

    meta: Metadata
    resolution: tuple               # ((xn, xd), (yn, yd), unit) as written into the master
    resolution_assumed: bool


@dataclass
class Frame:
    pixels: np.ndarray              # canonical: palette expanded, orientation baked
    layout: tiff.Layout
    mode: str                       # the source mode as decoded
    steps: list[str]
    page: Page                      # its metadata and resolution (every decoder gives each frame its page)


@dataclass
class Source:
    """A decoded source: what it is, its metadata, and its frames (decoded one at a time)."""

    format: Format
    width: int
    height: int
    mode: str
    frames: int
    decoder: tuple[str, str]        # (library, version)
    meta: Metadata
    resolution: tuple               # ((xn, xd), (yn, yd), unit) as written into the master
    resolution_assumed: bool
    iter_frames: Callable[[], Iterator[Frame]]
    messages: list[str] = field(default_factory=list)
    # The original's encoding as its header states it (technical keys named as a master's):
    # compression, photometric, bits_per_sample, samples_per_pixel, extra_samples, byte_order (TIFF)
    encoding: dict = field(default_factory=dict)


def source_technical(source: Source) -> dict:
    """The original's technical data for its MIX: its encoding, its ICC profile's name, and its
    resolution where it states one (an assumed default is the master's alone)."""
    tech = dict(source.encoding)
    icc = icc_description(source.meta.icc)
    if icc:
        tech["icc_profile"] = icc
    if not source.resolution_assumed:
        tech.update(resolution_technical(source.resolution))
    return tech


def resolution_technical(resolution: tuple) -> dict:
    """((xn, xd), (yn, yd), unit) as technical keys."""
    (xn, xd), (yn, yd), unit = resolution
    return {"x_resolution": round(xn / xd, 4), "y_resolution": round(yn / yd, 4),
            "resolution_unit": {1: "none", 2: "inch", 3: "centimeter"}[unit]}


# TIFF PhotometricInterpretation -> its name in the technical data (those this pipeline decodes)
PHOTOMETRIC = {0: "min-is-white", 1: "min-is-black", 2: "RGB", 3: "palette", 5: "separated (CMYK)", 6: "YCbCr"}


# --------------------------------------------------------------------------------------------
# Masters: write, read back with an independent decoder, compare, digest.


@dataclass
class Master:
    path: Path                      # the final path (after the rename)
    size: int
    checksums: dict[str, str]
    technical: dict
    proven: bool
    mismatch: str = ""


def icc_description(icc: bytes | None) -> str:
    if not icc:
        return ""
    try:
        from PIL import ImageCms
        text = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
        return xml_safe(text)   # a label for the MIX; the profile itself is carried byte for byte
    except Exception:  # a damaged profile is still carried byte for byte; it just has no name
        return "(unreadable profile description)"


def _metadata_entries(meta: Metadata) -> list[tiff.Entry]:
    entries = list(meta.ifd0)
    if meta.icc:
        entries.append(tiff.undefined(34675, meta.icc))
    if meta.xmp:
        entries.append(tiff.undefined(700, meta.xmp, tiff.BYTE))
    if meta.iptc:
        # LONG, as Photoshop writes it: the one form exiftool reads (checkit-tiff expects UNDEFINED)
        padded = meta.iptc + b"\0" * (-len(meta.iptc) % 4)
        entries.append(tiff.Entry(33723, tiff.LONG, len(padded) // 4, padded))
    return entries


def read_master(path: Path) -> np.ndarray:
    """The master's pixels as decoded by tifffile (independent of the writer).

    Uncompressed 8- and 16-bit masters are memory-mapped by tifffile from the file just written
    (it is in the page cache): no second image-sized copy in memory.
    """
    import tifffile
    with tifffile.TiffFile(path) as tf:
        if len(tf.pages) != 1:
            raise ValueError(f"{len(tf.pages)} images in the master, expected 1")
        page = tf.pages[0]
        mappable = page.is_contiguous and page.compression == 1 and page.bitspersample in (8, 16)
        return page.asarray(out="memmap" if mappable else None)


def _prove(master: np.ndarray, source: np.ndarray, rows: int = 256) -> tuple[str, str]:
    """Compare the master as read back with the source and take its pixel digest, in one pass of
    blocks of rows: ("" when equal, else how many samples differ; the digest).  A memory-mapped
    master's pages are given back to the page cache once compared (madvise), so the proof adds
    a block, not an image, to the process's memory."""
    h, differ = _digest_of(master), 0
    release = _releaser(master)
    for top in range(0, master.shape[0], rows):
        x, y = master[top:top + rows], source[top:top + rows]
        if not np.array_equal(x, y):
            differ += int(np.count_nonzero(x != y))
        h.update(memoryview(_canonical(x)).cast("B"))
        release(min(top + rows, master.shape[0]))
    return (f"{differ} sample(s) differ" if differ else ""), h.hexdigest()


def _releaser(pixels: np.ndarray) -> Callable[[int], None]:
    """For a np.memmap: a function that lets the rows before `row` leave this process's memory."""
    mm = getattr(pixels, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return lambda row: None
    start = pixels.offset % mmap.ALLOCATIONGRANULARITY        # where the array begins in the map
    row_bytes = pixels.strides[0]
    done = [0]

    def release(row: int) -> None:
        end = (start + row * row_bytes) // mmap.PAGESIZE * mmap.PAGESIZE
        if end > done[0]:
            try:
                mm.madvise(mmap.MADV_DONTNEED, done[0], end - done[0])
            except OSError:
                pass        # advice only: the pages simply stay until the map is closed
            done[0] = end
    return release


def write_master(source: Source, frame: Frame, dest: Path, compression: str,
                 algorithms: tuple[str, ...]) -> Master:
    """Write `frame` as a master at a temporary name, prove it, then rename it to `dest`.

    A master that fails its proof is deleted and returned with `proven=False`.
    """
    code = tiff.DEFLATE if compression == "deflate" else tiff.NONE
    tmp = dest.with_name(f".{dest.name}.proving")
    page = frame.page
    meta = page.meta
    try:
        chunks = tiff.encode(frame.pixels, frame.layout, code, page.resolution,
                             _metadata_entries(meta), meta.exif, meta.gps)
        size, checksums = tiff.write_chunks(tmp, chunks, algorithms)
        del chunks
        messages: list[str] = []
        try:
            with captured(messages):
                decoded = read_master(tmp)
        except ValueError as exc:   # tifffile cannot read what was written: the proof fails
            decoded, mismatch = None, f"the master cannot be read back: {exc}"
        source.messages.extend(f"reading the master back: {m}" for m in messages)
        if decoded is None:
            master_digest = ""
        elif decoded.shape != frame.pixels.shape or decoded.dtype != frame.pixels.dtype:
            mismatch = (f"master decodes to {decoded.dtype} {decoded.shape}, source is "
                        f"{frame.pixels.dtype} {frame.pixels.shape}")
            master_digest = pixel_digest(decoded)
        else:
            mismatch, master_digest = _prove(decoded, frame.pixels)
        del decoded
        source_digest = master_digest if not mismatch else pixel_digest(frame.pixels)
        if not mismatch:
            durable.started_path(tmp)   # read back: now its pages may go to disk
            os.link(tmp, dest)      # never replaces: FileExistsError when the name is taken
        tmp.unlink(missing_ok=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    pixels = frame.pixels
    technical = {
        "width": int(pixels.shape[1]), "height": int(pixels.shape[0]),
        "bits_per_sample": 1 if pixels.dtype == bool else pixels.dtype.itemsize * 8,
        "samples_per_pixel": int(pixels.shape[2]) if pixels.ndim == 3 else 1,
        "photometric": PHOTOMETRIC[frame.layout.photometric], "byte_order": "little endian",
        "extra_samples": "unassociated alpha" if frame.layout.extrasamples else "",
        "compression": "deflate, horizontal predictor" if code == tiff.DEFLATE and pixels.dtype != bool
        else ("deflate" if code == tiff.DEFLATE else "none"),
        "icc_profile": icc_description(meta.icc),
        **resolution_technical(page.resolution),
        "resolution_assumed": page.resolution_assumed,
        "orientation_applied": {"exif_orientation": meta.orientation,
                                "transform": ORIENTATIONS[meta.orientation][0]},
        "source_mode": frame.mode, "steps": list(frame.steps),
        "metadata_carried": list(meta.carried), "metadata_dropped": list(meta.dropped),
        "source_pixel_sha256": source_digest, "master_pixel_sha256": master_digest,
    }
    return Master(dest, size, checksums, technical, not mismatch, mismatch)
