"""Reading the metadata a TIFF structure holds (an EXIF block, or a TIFF file's page IFDs), so that
it can be carried into a master: bounded, never follows more than the EXIF and GPS pointers, and
turns every entry into little-endian `tiff.Entry` values with the offsets left to the writer.

Whatever cannot be carried is named in `Metadata.dropped`, never silently lost.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from PIL import TiffTags

from .tiff import ASCII, EXIF_IFD, GPS_IFD, TYPE_SIZES, Entry, ascii

MAX_ENTRIES = 1024

# IFD0 tags that describe the image's encoding: rewritten by the writer, never "metadata".
STRUCTURAL = {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 274, 277, 278, 279, 280, 281, 282,
              283, 284, 296, 297, 317, 320, 322, 323, 324, 325, 332, 338, 339, 340, 341, 513, 514,
              529, 530, 531, 532}
# Descriptive IFD0 tags carried into the master's IFD0 (all ASCII).
CARRIED_IFD0 = {270: "ImageDescription", 271: "Make", 272: "Model", 305: "Software",
                306: "DateTime", 315: "Artist", 33432: "Copyright"}
ICC, XMP, IPTC = 34675, 700, 33723
INTEROP_IFD, MAKER_NOTE = 40965, 37500


@dataclass
class Metadata:
    ifd0: list[Entry] = field(default_factory=list)
    exif: list[Entry] = field(default_factory=list)
    gps: list[Entry] = field(default_factory=list)
    icc: bytes | None = None
    xmp: bytes | None = None
    iptc: bytes | None = None
    orientation: int = 1
    resolution: tuple | None = None        # ((xn, xd), (yn, yd), unit) as found
    carried: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


class _Reader:
    def __init__(self, buf: bytes) -> None:
        if buf[:4] not in (b"II*\0", b"MM\0*"):
            raise ValueError("not a TIFF structure")
        self.buf = buf
        self.bo = "<" if buf[:2] == b"II" else ">"

    def unpack(self, fmt: str, offset: int):
        size = struct.calcsize(self.bo + fmt)
        if offset < 0 or offset + size > len(self.buf):
            raise ValueError(f"offset {offset} outside the data")
        return struct.unpack_from(self.bo + fmt, self.buf, offset)

    def first_ifd(self) -> int:
        return self.unpack("I", 4)[0]

    def ifd(self, offset: int) -> tuple[dict[int, tuple[int, int, bytes]], int]:
        """{tag: (type, count, raw value bytes in the source's byte order)} and the next IFD offset."""
        (n,) = self.unpack("H", offset)
        if n > MAX_ENTRIES:
            raise ValueError(f"IFD with {n} entries")
        out = {}
        for i in range(n):
            tag, typ, count, value = self.unpack("HHI4s", offset + 2 + 12 * i)
            size = TYPE_SIZES.get(typ)
            if size is None:
                out[tag] = (typ, count, b"")
                continue
            total = size * count
            if total <= 4:
                raw = value[:total]
            else:
                (at,) = struct.unpack(self.bo + "I", value)
                if at + total > len(self.buf):
                    raise ValueError(f"tag {tag} points outside the data")
                raw = self.buf[at:at + total]
            out[tag] = (typ, count, raw)
        (nxt,) = self.unpack("I", offset + 2 + 12 * n)
        return out, nxt

    def entry(self, tag: int, typ: int, count: int, raw: bytes) -> Entry:
        """The entry re-encoded little-endian (elements swapped when the source is big-endian)."""
        size = TYPE_SIZES[typ]
        element = 4 if typ in (5, 10) else size
        if self.bo == ">" and element > 1:
            raw = b"".join(raw[i:i + element][::-1] for i in range(0, len(raw), element))
        return Entry(tag, typ, count, raw)

    def number(self, typ: int, raw: bytes) -> int | tuple[int, int] | None:
        if typ == 3 and len(raw) >= 2:
            return struct.unpack(self.bo + "H", raw[:2])[0]
        if typ == 4 and len(raw) >= 4:
            return struct.unpack(self.bo + "I", raw[:4])[0]
        if typ == 5 and len(raw) >= 8:
            return struct.unpack(self.bo + "II", raw[:8])
        return None


def tag_name(tag: int, group: str = "") -> str:
    info = TiffTags.lookup(tag)
    name = info.name if info.name != "unknown" else ""
    if not name:
        from PIL import ExifTags
        name = (ExifTags.GPSTAGS.get(tag) if group == "GPS" else ExifTags.TAGS.get(tag)) or "unknown"
    return f"{group + ' ' if group else ''}tag {tag} ({name})"


def _sub_ifd(reader: _Reader, offset: int, group: str, meta: Metadata) -> list[Entry]:
    entries, _ = reader.ifd(offset)
    out = []
    for tag, (typ, count, raw) in sorted(entries.items()):
        if tag == MAKER_NOTE:
            meta.dropped.append("EXIF MakerNote (private offsets would not survive relocation)")
        elif tag == INTEROP_IFD:
            meta.dropped.append("EXIF Interoperability IFD")
        elif typ not in TYPE_SIZES or typ == 13 or not raw and count:
            meta.dropped.append(f"{tag_name(tag, group)}: unsupported field type {typ}")
        else:
            out.append(reader.entry(tag, typ, count, raw))
    return out


def page_offsets(buf: bytes, count: int) -> list[int]:
    """The offsets of a TIFF file's first `count` page IFDs, following the chain of next-IFD offsets.

    Raises ValueError when the chain is damaged or loops before `count` pages.
    """
    reader = _Reader(buf)
    offsets, at = [], reader.first_ifd()
    while len(offsets) < count:
        if not at or at in offsets:
            raise ValueError(f"the chain of image directories ends or loops after {len(offsets)} page(s)")
        offsets.append(at)
        (n,) = reader.unpack("H", at)                  # only the entry count and the next offset:
        (at,) = reader.unpack("I", at + 2 + 12 * n)    # a page's damaged values are its own problem
    return offsets


def read_metadata(buf: bytes, ifd_offset: int | None = None, *, image_ifd: bool = False) -> Metadata:
    """Metadata of a TIFF structure: an EXIF block, or (`image_ifd`) a TIFF file's image IFD (the
    first, or the page at `ifd_offset`).

    Raises ValueError when the structure is damaged; the caller decides what that drops.
    """
    meta = Metadata()
    reader = _Reader(buf)
    offset = reader.first_ifd() if ifd_offset is None else ifd_offset
    entries, nxt = reader.ifd(offset)
    for tag, (typ, count, raw) in sorted(entries.items()):
        if tag == 274:
            value = reader.number(typ, raw)
            meta.orientation = value if isinstance(value, int) and 1 <= value <= 8 else 1
        elif tag in (282, 283, 296):
            continue
        elif tag in STRUCTURAL:
            continue
        elif tag in CARRIED_IFD0 and typ == ASCII:
            entry = ascii(tag, raw)
            if entry:
                meta.ifd0.append(entry)
                meta.carried.append(f"TIFF tag {tag} ({CARRIED_IFD0[tag]})")
        elif tag == ICC:
            meta.icc = raw
        elif tag == XMP:
            meta.xmp = raw
        elif tag == IPTC:
            meta.iptc = raw
        elif tag == EXIF_IFD:
            meta.exif = _sub_ifd(reader, reader.number(typ, raw) or 0, "EXIF", meta)
            if meta.exif:
                meta.carried.append(f"EXIF IFD ({len(meta.exif)} tags)")
        elif tag == GPS_IFD:
            meta.gps = _sub_ifd(reader, reader.number(typ, raw) or 0, "GPS", meta)
            if meta.gps:
                meta.carried.append(f"GPS IFD ({len(meta.gps)} tags)")
        else:
            meta.dropped.append(tag_name(tag))
    x, y, unit = (reader.number(*entries[t][::2]) if t in entries else None for t in (282, 283, 296))
    if isinstance(x, tuple) and isinstance(y, tuple) and x[0] and x[1] and y[0] and y[1]:
        meta.resolution = (x, y, unit if unit in (1, 2, 3) else 2)
    if nxt and not image_ifd:
        meta.dropped.append("EXIF thumbnail (IFD1)")
    return meta
