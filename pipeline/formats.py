"""Identify a file's format by its signature (magic bytes), never by its extension.

`identify(head)` looks at the first bytes of a file (64 KiB is plenty: JPEG APPn segments, PNG
ancillary chunks before IDAT) and returns a `Format` with the MIME type, the format name and
version, and the PRONOM PUID where the signature tells it.  Formats the pipeline does not take as
photographs (PDF, ZIP, HEIF...) are still named, with `supported=False`, so the report can say what
the file is.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

HEAD_SIZE = 65536


@dataclass(frozen=True)
class Format:
    mimetype: str
    name: str
    version: str = ""
    pronom: str = ""
    supported: bool = True
    extensions: tuple[str, ...] = ()


# PRONOM PUIDs by (format, version); "" when PRONOM has no entry we can tell from the signature.
_JFIF = {"1.00": "fmt/42", "1.01": "fmt/43", "1.02": "fmt/44"}
_EXIF = {"0200": ("2.0", "x-fmt/398"), "0210": ("2.1", "x-fmt/390"), "0220": ("2.2", "x-fmt/391"),
         "0221": ("2.21", "fmt/645")}
_PNG = {"1.0": "fmt/11", "1.1": "fmt/12", "1.2": "fmt/13"}
_BMP = {12: ("OS/2 1.x", "fmt/115"), 40: ("3.0", "fmt/116"), 108: ("4.0", "fmt/118"),
        124: ("5.0", "fmt/119")}
_JPEG_EXT = ("jpg", "jpeg", "jpe", "jfif")
_TIFF_EXT = ("tif", "tiff")

# Recognised, but not photographs this pipeline takes.
_OTHER = (
    (b"%PDF-", Format("application/pdf", "Portable Document Format", supported=False, extensions=("pdf",))),
    (b"PK\x03\x04", Format("application/zip", "ZIP archive", supported=False, extensions=("zip",))),
    (b"8BPS", Format("image/vnd.adobe.photoshop", "Adobe Photoshop", supported=False, extensions=("psd",))),
    (b"{", Format("application/json", "JSON text", supported=False, extensions=("json",))),
)


def identify(head: bytes) -> Format | None:
    """The format of a file from its first bytes, or None when no signature matches."""
    if head.startswith(b"\xff\xd8\xff"):
        return _jpeg(head)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(head)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return Format("image/tiff", "Tagged Image File Format", "", "fmt/353", extensions=_TIFF_EXT)
    if head[:4] in (b"II+\x00", b"MM\x00+"):
        return Format("image/tiff", "BigTIFF", "", "", extensions=_TIFF_EXT)
    if head[:6] in (b"GIF87a", b"GIF89a"):
        version = head[3:6].decode()
        return Format("image/gif", "Graphics Interchange Format", version,
                      "fmt/3" if version == "87a" else "fmt/4", extensions=("gif",))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        kind = head[12:16]
        puid = {b"VP8 ": "fmt/566", b"VP8L": "fmt/567", b"VP8X": "fmt/568"}.get(kind, "")
        return Format("image/webp", "WebP", "", puid, extensions=("webp",))
    if head[:2] == b"BM" and len(head) >= 18:
        version, puid = _BMP.get(struct.unpack("<I", head[14:18])[0], ("", ""))
        return Format("image/bmp", "Windows Bitmap", version, puid, extensions=("bmp", "dib"))
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        avif = head[8:12] == b"avif"
        return Format("image/avif" if avif else "image/heif", "AVIF" if avif else "HEIF",
                      supported=False, extensions=("avif",) if avif else ("heic", "heif"))
    for signature, fmt in _OTHER:
        if head.startswith(signature):
            return fmt
    return None


def extension_matches(fmt: Format, name: str) -> bool:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return not fmt.extensions or ext in fmt.extensions


def _jpeg(head: bytes) -> Format:
    """JFIF (APP0) or Exif (APP1) by the first application segment; otherwise raw JPEG."""
    pos = 2
    while pos + 4 <= len(head) and head[pos] == 0xFF:
        marker = head[pos + 1]
        length = struct.unpack(">H", head[pos + 2:pos + 4])[0]
        body = head[pos + 4:pos + 2 + length]
        if marker == 0xE0 and body.startswith(b"JFIF\x00") and len(body) >= 7:
            version = f"{body[5]}.{body[6]:02d}"
            return Format("image/jpeg", "JPEG File Interchange Format", version,
                          _JFIF.get(version, ""), extensions=_JPEG_EXT)
        if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
            version, puid = _EXIF.get(_exif_version(body[6:]), ("", ""))
            return Format("image/jpeg", "Exchangeable Image File Format (Compressed)", version, puid,
                          extensions=_JPEG_EXT)
        if not 0xE0 <= marker <= 0xEF:
            break
        pos += 2 + length
    return Format("image/jpeg", "Raw JPEG Stream", "", "fmt/41", extensions=_JPEG_EXT)


def _exif_version(tiff: bytes) -> str:
    """The ExifVersion tag (0x9000) of an Exif block, e.g. "0220"; "" when absent."""
    try:
        order = "<" if tiff[:2] == b"II" else ">"
        ifd0 = struct.unpack(order + "I", tiff[4:8])[0]
        exif_ifd = _find_tag(tiff, order, ifd0, 0x8769)
        if exif_ifd is None:
            return ""
        count = struct.unpack(order + "H", tiff[exif_ifd:exif_ifd + 2])[0]
        for i in range(count):
            entry = tiff[exif_ifd + 2 + 12 * i: exif_ifd + 14 + 12 * i]
            if struct.unpack(order + "H", entry[:2])[0] == 0x9000:
                return entry[8:12].decode("ascii", "replace")
    except (struct.error, IndexError):
        pass
    return ""


def _find_tag(tiff: bytes, order: str, ifd: int, tag: int) -> int | None:
    count = struct.unpack(order + "H", tiff[ifd:ifd + 2])[0]
    for i in range(count):
        entry = tiff[ifd + 2 + 12 * i: ifd + 14 + 12 * i]
        if struct.unpack(order + "H", entry[:2])[0] == tag:
            return struct.unpack(order + "I", entry[8:12])[0]
    return None


def _png(head: bytes) -> Format:
    """PNG 1.2 if it holds iTXt, 1.1 if iCCP/sRGB/sPLT, else 1.0 (the chunks each version added)."""
    chunks = set()
    pos = 8
    while pos + 8 <= len(head):
        length, kind = struct.unpack(">I4s", head[pos:pos + 8])
        chunks.add(kind)
        if kind == b"IDAT":
            break
        pos += 12 + length
    version = "1.2" if b"iTXt" in chunks else "1.1" if chunks & {b"iCCP", b"sRGB", b"sPLT"} else "1.0"
    return Format("image/png", "Portable Network Graphics", version, _PNG[version], extensions=("png",))


def png_header(head: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 26:
        return head[24], head[25]
    return None
