"""A small baseline TIFF 6.0 writer (little-endian, one image per file) and a bounded IFD reader.

Why our own writer: it gives full control of what an archival master contains (no Software or
DateTime stamped by a library, so the same input gives the same bytes), it writes the EXIF and GPS
sub-IFDs that neither Pillow (with compression) nor tifffile can write, and it streams the strips
straight from the pixel array into the file and the hashers, with no second copy of the image in
memory.  Masters are read back for the pixel proof by an independent decoder (tifffile).

Layout: header | IFD0 and its values | EXIF IFD | GPS IFD | strips (each at an even offset).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .hashing import new_hashers

# TIFF field types -> size in bytes of one element (RATIONAL = two LONGs)
BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE, UNDEFINED = 1, 2, 3, 4, 5, 6, 7
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}

NONE, DEFLATE = 1, 8                       # Compression values
MINISWHITE, MINISBLACK, RGB, SEPARATED = 0, 1, 2, 5
UNASSOCIATED_ALPHA = 2                     # ExtraSamples value
STRIP_BYTES = 1 << 20                      # about 1 MiB of raw pixels per strip
EXIF_IFD, GPS_IFD = 34665, 34853
MAX_FILE = 2**32 - 1


@dataclass(frozen=True)
class Entry:
    """One IFD entry with its value already encoded little-endian (`len(data) == count * size`)."""

    tag: int
    type: int
    count: int
    data: bytes


def short(tag: int, *values: int) -> Entry:
    return Entry(tag, SHORT, len(values), struct.pack(f"<{len(values)}H", *values))


def long(tag: int, *values: int) -> Entry:
    return Entry(tag, LONG, len(values), struct.pack(f"<{len(values)}I", *values))


def rational(tag: int, numerator: int, denominator: int) -> Entry:
    return Entry(tag, RATIONAL, 1, struct.pack("<II", numerator, denominator))


def ascii(tag: int, value: bytes) -> Entry | None:
    """An ASCII entry: the text up to its first NUL, NUL-terminated once; None when empty."""
    text = value.split(b"\0", 1)[0]
    return Entry(tag, ASCII, len(text) + 1, text + b"\0") if text else None


def undefined(tag: int, value: bytes, type: int = UNDEFINED) -> Entry:
    return Entry(tag, type, len(value), bytes(value))


def _ifd_size(entries: Sequence[Entry]) -> int:
    size = 2 + 12 * len(entries) + 4
    for e in entries:
        if len(e.data) > 4:
            size += len(e.data) + (len(e.data) & 1)
    return size


def _ifd_bytes(entries: Sequence[Entry], offset: int) -> bytes:
    """An IFD at `offset` followed by its out-of-line values (each at an even offset); next = 0."""
    entries = sorted(entries, key=lambda e: e.tag)
    head = [struct.pack("<H", len(entries))]
    values: list[bytes] = []
    at = offset + 2 + 12 * len(entries) + 4
    for e in entries:
        if len(e.data) <= 4:
            head.append(struct.pack("<HHI", e.tag, e.type, e.count) + e.data.ljust(4, b"\0"))
        else:
            head.append(struct.pack("<HHII", e.tag, e.type, e.count, at))
            padded = e.data + b"\0" * (len(e.data) & 1)
            values.append(padded)
            at += len(padded)
    head.append(b"\0\0\0\0")
    return b"".join(head + values)


def deflate(data: bytes) -> bytes:
    """A zlib stream at level 6 from libdeflate (imagecodecs): several times faster than zlib."""
    import imagecodecs
    return imagecodecs.deflate_encode(data, 6)


def _predict(rows: np.ndarray) -> np.ndarray:
    """Horizontal differencing (Predictor = 2), per sample, modulo the sample size."""
    out = rows.copy()
    out[:, 1:] -= rows[:, :-1]
    return out


@dataclass(frozen=True)
class Layout:
    """What the writer needs to know about the pixels."""

    photometric: int
    extrasamples: tuple[int, ...] = ()
    inkset: bool = False                 # CMYK: InkSet = 1


def encode(pixels: np.ndarray, layout: Layout, compression: int, resolution: tuple,
           ifd0_extra: Iterable[Entry] = (), exif: Sequence[Entry] = (),
           gps: Sequence[Entry] = ()) -> list:
    """The master as a list of byte buffers to write in order.

    `pixels`: C-contiguous (H, W) or (H, W, S) array of bool (1 bit), uint8 or little-endian uint16.
    `resolution`: (x, y, unit) with x and y as (numerator, denominator) pairs.
    """
    height, width = pixels.shape[:2]
    samples = pixels.shape[2] if pixels.ndim == 3 else 1
    bits = 1 if pixels.dtype == bool else pixels.dtype.itemsize * 8
    packed = pixels.dtype == bool
    if packed:
        rows_source = np.packbits(pixels, axis=1)
    else:
        rows_source = pixels.astype(pixels.dtype.newbyteorder("<"), copy=False)
    row_bytes = rows_source[0].nbytes if height else 1
    per_strip = max(1, min(height, STRIP_BYTES // max(row_bytes, 1)))
    strips: list = []
    for top in range(0, height, per_strip):
        rows = rows_source[top:top + per_strip]
        if compression == DEFLATE:
            strips.append(deflate((rows if packed else _predict(rows)).tobytes()))
        else:
            strips.append(memoryview(np.ascontiguousarray(rows)).cast("B"))
    (xn, xd), (yn, yd), unit = resolution
    entries = [long(256, width), long(257, height), short(258, *([bits] * samples)),
               short(259, compression), short(262, layout.photometric),
               long(273, *([0] * len(strips))), short(274, 1), short(277, samples),
               long(278, per_strip), long(279, *(len(s) for s in strips)),
               rational(282, xn, xd), rational(283, yn, yd), short(284, 1), short(296, unit)]
    if compression == DEFLATE and not packed:
        entries.append(short(317, 2))
    if layout.inkset:
        entries.append(short(332, 1))
    if layout.extrasamples:
        entries.append(short(338, *layout.extrasamples))
    entries.extend(ifd0_extra)
    subs = [(EXIF_IFD, list(exif)), (GPS_IFD, list(gps))]
    subs = [(tag, sub) for tag, sub in subs if sub]
    entries.extend(long(tag, 0) for tag, _ in subs)
    # Pass 1: sizes (they do not depend on the offsets); pass 2: the real offsets.
    at = 8 + _ifd_size(entries)
    sub_offsets = {}
    for tag, sub in subs:
        sub_offsets[tag] = at
        at += _ifd_size(sub)
    offsets = []
    for s in strips:
        offsets.append(at)
        at += len(s) + (len(s) & 1)
    if at > MAX_FILE:
        raise ValueError("the master would exceed 4 GiB, the limit of a baseline TIFF")
    fixed = {273: long(273, *offsets), **{tag: long(tag, off) for tag, off in sub_offsets.items()}}
    entries = [fixed.get(e.tag, e) for e in entries]
    head = [b"II*\0" + struct.pack("<I", 8), _ifd_bytes(entries, 8)]
    for tag, sub in subs:
        head.append(_ifd_bytes(sub, sub_offsets[tag]))
    out: list = [b"".join(head)]
    for s in strips:
        out.append(s)
        if len(s) & 1:
            out.append(b"\0")
    return out


def write_chunks(dest: Path, chunks: Iterable, algorithms: Iterable[str]) -> tuple[int, dict[str, str]]:
    """Write buffers to `dest`, hashing them as they pass; returns size and digests.

    Not fsynced: durability comes from the barrier before publishing (durable.py); the caller
    starts the writeback once it has read the file back.

    The caller writes to a temporary name and renames once the file is proven; on any error the
    partial file is removed.
    """
    hashers = new_hashers(algorithms)
    dest.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with open(dest, "wb") as f:
            for chunk in chunks:
                for h in hashers.values():
                    h.update(chunk)
                f.write(chunk)
                size += len(chunk) if isinstance(chunk, bytes) else chunk.nbytes
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return size, {alg: h.hexdigest() for alg, h in hashers.items()}
