"""Decoding sources: identify by signature, open, decode frames to canonical pixel arrays.

Pillow wherever it is exact (CMYK and MPO JPEG, 8-bit and 16-bit grey, palette, bilevel, GIF,
WebP, 8-bit TIFF); libjpeg-turbo through imagecodecs for grey and RGB JPEG (straight into one
array); imagecodecs' libpng for 16-bit colour PNG and tifffile for 16-bit colour and 16-bit
min-is-white TIFF, because Pillow cuts 16-bit colour to 8 bits (and leaves 16-bit min-is-white
uninverted).  Every decoder exception is wrapped into a ConversionError with a convert.* problem.
"""
from __future__ import annotations

import io
import re
import struct
from fractions import Fraction
from typing import Callable, Iterator

import numpy as np

from . import tiff
from .errors import ConversionError, Problem, UnsupportedInput
from .exif import Metadata, page_offsets, read_metadata
from .formats import Format, identify
from .imaging import ORIENTATIONS, PHOTOMETRIC, Frame, Page, Source, captured, orient

# --------------------------------------------------------------------------------------------
# Formats, identified by signature.


KINDS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/tiff": "TIFF", "image/gif": "GIF",
         "image/webp": "WebP"}


def kind_of(fmt: Format | None) -> str:
    """The short name of a format this module converts, or "" (BigTIFF, PDF, unknown...)."""
    if fmt is None or not fmt.supported or fmt.name == "BigTIFF":
        return ""
    return KINDS.get(fmt.mimetype, "")


def describe_unsupported(data: bytes, fmt: Format | None) -> str:
    head = data[:256].lstrip()
    if head.startswith(b"%PDF"):
        return "a PDF document, not an image this pipeline converts"
    if head.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:4096]:
        return "an SVG drawing (vector), not a raster image this pipeline converts"
    if fmt is not None:
        return f"{fmt.name} ({fmt.mimetype}) is not a format this pipeline converts"
    return "not a JPEG, PNG, TIFF, GIF or WebP image"


def _fail(code: str, path: str, reason: str, cls=ConversionError):
    return cls(f"{path}: {reason}", [Problem(code, path, reason)])


# Pillow modes kept as they are -> (photometric, extrasamples, inkset)
PILLOW_LAYOUTS = {
    "1": tiff.Layout(tiff.MINISBLACK), "L": tiff.Layout(tiff.MINISBLACK),
    "LA": tiff.Layout(tiff.MINISBLACK, (tiff.UNASSOCIATED_ALPHA,)),
    "RGB": tiff.Layout(tiff.RGB), "RGBA": tiff.Layout(tiff.RGB, (tiff.UNASSOCIATED_ALPHA,)),
    "CMYK": tiff.Layout(tiff.SEPARATED, (), True),
    "I;16": tiff.Layout(tiff.MINISBLACK), "I;16L": tiff.Layout(tiff.MINISBLACK),
    "I;16B": tiff.Layout(tiff.MINISBLACK), "I;16N": tiff.Layout(tiff.MINISBLACK),
}


def _pillow_frame(im, path: str, page: Page) -> Frame:
    mode, steps, orientation = im.mode, [], page.meta.orientation
    # Pillow's TIFF reader bakes the Orientation in itself as it loads (and removes the tag): once only
    baked = im.format == "TIFF" and 274 not in im.tag_v2
    if mode in ("P", "PA"):
        target = "RGBA" if mode == "PA" or "transparency" in im.info else "RGB"
        im = im.convert(target)
        steps.append(f"palette expanded to {target}" + (" (palette transparency kept as alpha)"
                                                      if target == "RGBA" else ""))
    elif mode in ("L", "RGB") and "transparency" in im.info:
        target = mode + "A" if mode == "RGB" else "LA"
        im = im.convert(target)
        steps.append(f"transparent colour key expanded to alpha ({target})")
    layout = PILLOW_LAYOUTS.get(im.mode)
    if layout is None:
        raise _fail("convert.mode", path, f"pixel mode {im.mode} is not supported for archival masters",
                    UnsupportedInput)
    pixels = np.asarray(im)
    if pixels.dtype.itemsize > 1:
        pixels = pixels.astype("<u2", copy=False)
    if orientation != 1:
        steps.append(f"EXIF orientation {orientation} baked in: {ORIENTATIONS[orientation][0]}")
    return Frame(pixels if baked else orient(pixels, orientation), layout, mode, steps, page)


def _array_frame(pixels: np.ndarray, photometric: int, extrasamples: tuple, mode: str, page: Page) -> Frame:
    orientation = page.meta.orientation
    steps = [f"EXIF orientation {orientation} baked in: {ORIENTATIONS[orientation][0]}"] if orientation != 1 else []
    pixels = pixels.astype(pixels.dtype.newbyteorder("<"), copy=False)
    return Frame(orient(pixels, orientation), tiff.Layout(photometric, extrasamples), mode, steps, page)


def _png_header(data: bytes) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR."""
    return data[24], data[25]


def _png_phys(data: bytes) -> tuple | None:
    """A PNG's pHYs in pixels per metre (unit 1) as an exact resolution per centimetre."""
    at = 8
    while at + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, at)
        if kind == b"IDAT" or kind == b"IEND":
            return None
        if kind == b"pHYs" and length == 9 and at + 17 <= len(data):
            x, y, unit = struct.unpack_from(">IIB", data, at + 8)
            return ((x, 100), (y, 100), 3) if unit == 1 and x and y else None
        at += 12 + length
    return None


def _ratio(value: float) -> tuple[int, int]:
    f = Fraction(value).limit_denominator(10000)
    return f.numerator, f.denominator


def _pillow_metadata(im, fmt: Format, data: bytes, path: str) -> Metadata:
    """EXIF (relocatable), ICC, XMP, IPTC of a JPEG, PNG, GIF or WebP (TIFF: `_tiff_pages`);
    everything not carried is listed in `dropped`."""
    info, kind = im.info, kind_of(fmt)
    meta = Metadata()
    try:
        if info.get("exif"):
            raw = info["exif"]
            meta = read_metadata(raw[6:] if raw.startswith(b"Exif\0\0") else raw)
    except (ValueError, struct.error) as exc:
        meta.dropped.append(f"EXIF (damaged: {exc})")
    meta.icc = info.get("icc_profile") or None
    text = dict(getattr(im, "text", {}) or {}) if kind == "PNG" else {}
    xmp = info.get("xmp") or text.pop("XML:com.adobe.xmp", None)
    text.pop("XML:com.adobe.xmp", None)
    meta.xmp = xmp.encode("utf-8") if isinstance(xmp, str) else xmp
    for key in sorted(text):
        meta.dropped.append(f"PNG text chunk {key!r}")
    photoshop = info.get("photoshop") or {}
    meta.iptc = photoshop.get(0x0404)
    for rid in sorted(photoshop):
        if rid != 0x0404:
            meta.dropped.append(f"Photoshop resource 0x{rid:04X}")
    if info.get("comment"):
        meta.dropped.append(f"{kind} comment")
    for key, label in (("gamma", "PNG gAMA (gamma)"), ("srgb", "PNG sRGB rendering intent"),
                       ("chromaticity", "PNG cHRM (chromaticities)"), ("mp", "MPF index (further images)")):
        if key in info:
            meta.dropped.append(label)
    _label_carried(meta)
    return meta


def _label_carried(meta: Metadata) -> None:
    if meta.icc:
        meta.carried.append("ICC profile")
    if meta.xmp:
        meta.carried.append("XMP")
    if meta.iptc:
        meta.carried.append("IPTC-IIM")


def _tiff_pages(data: bytes, fmt: Format, count: int, default: float) -> list[Page]:
    """Each of a TIFF's `count` pages with the metadata, orientation and resolution of its own IFD."""
    def own(offset: int) -> Metadata:
        try:
            return read_metadata(data, offset, image_ifd=True)
        except (ValueError, struct.error) as exc:
            return Metadata(dropped=[f"TIFF metadata (damaged: {exc})"])
    try:
        metas = [own(offset) for offset in page_offsets(data, count)]
    except (ValueError, struct.error) as exc:      # the chain of pages itself
        metas = [Metadata(dropped=[f"TIFF metadata (damaged: {exc})"]) for _ in range(count)]
    pages = []
    for meta in metas:
        _label_carried(meta)
        resolution, assumed = _resolution(None, fmt, data, meta, default)
        meta.xmp = _xmp_orientation_reset(meta.xmp, meta.orientation)
        pages.append(Page(meta, resolution, assumed))
    return pages


def _resolution(im, fmt: Format, data: bytes, meta: Metadata, default: float) -> tuple[tuple, bool]:
    info, kind = (im.info if im is not None else {}), kind_of(fmt)
    if kind == "JPEG" and info.get("jfif_unit") in (1, 2):
        dx, dy = info.get("jfif_density", (0, 0))
        if dx and dy:
            return ((dx, 1), (dy, 1), 2 if info["jfif_unit"] == 1 else 3), False
    if kind == "PNG":
        phys = _png_phys(data)
        if phys:
            return phys, False
    if meta.resolution and meta.resolution[2] in (2, 3):
        return meta.resolution, False
    r = _ratio(default)
    return (r, r, 2), True


def _xmp_orientation_reset(xmp: bytes | None, orientation: int) -> bytes | None:
    """XMP's tiff:Orientation would contradict the baked pixels: set it to 1 too."""
    if not xmp or orientation == 1:
        return xmp
    xmp = re.sub(rb'(tiff:Orientation\s*=\s*["\'])[1-8](["\'])', rb"\g<1>1\g<2>", xmp)
    return re.sub(rb"(<tiff:Orientation>)\s*[1-8]\s*(</tiff:Orientation>)", rb"\g<1>1\g<2>", xmp)


def _needs_tifffile(data: bytes) -> bool:
    import tifffile
    with tifffile.TiffFile(io.BytesIO(data)) as tf:
        # 16-bit colour (Pillow cuts it to 8 bits) and 16-bit min-is-white (Pillow does not
        # invert it as it does 8-bit, so its values would be written as min-is-black)
        return any(p.bitspersample > 8 and (p.samplesperpixel > 1 or p.photometric == 0) for p in tf.pages)


def open_source(data: bytes, path: str, pixel_limit: int, default_resolution: float = 300.0) -> Source:
    """Identify and open a source from its bytes; frames are decoded lazily by `iter_frames`.

    Raises UnsupportedInput or ConversionError (with a convert.* problem) for bad input.
    """
    if not data:
        raise _fail("convert.empty", path, "the file is empty (zero bytes)", UnsupportedInput)
    fmt = identify(data[:65536])
    kind = kind_of(fmt)
    if not kind:
        raise _fail("convert.unsupported", path, describe_unsupported(data, fmt), UnsupportedInput)
    messages: list[str] = []
    try:
        with captured(messages, pixel_limit):
            if kind == "PNG" and len(data) > 26 and _png_header(data) in ((16, 2), (16, 4), (16, 6)):
                source = _png16_source(data, path, fmt, pixel_limit, default_resolution)
            elif kind == "TIFF" and _needs_tifffile(data):
                source = _tifffile_source(data, path, fmt, pixel_limit, default_resolution)
            else:
                source = _pillow_source(data, path, fmt, pixel_limit, default_resolution)
    except (ConversionError, UnsupportedInput):
        raise
    except Exception as exc:  # decoders raise anything on hostile input: wrap at the boundary
        raise _decode_error(exc, path, fmt) from exc
    source.messages[:0] = messages
    source.iter_frames = _guarded(source.messages, source.iter_frames, path, fmt, pixel_limit)
    return source


def _guarded(found: list[str], frames: Callable[[], Iterator[Frame]], path: str, fmt: Format, pixel_limit: int):
    """Decode frames with library noise captured (into `found`, the source's messages) and decoder
    exceptions wrapped.  The closure holds the list, not the Source that holds the closure: no
    reference cycle, so a source and its bytes are freed as soon as the item is done, not at the
    garbage collector's next full pass (which let a worker's memory grow by ~10 MB per item
    until it ran)."""
    def iter_frames() -> Iterator[Frame]:
        it = frames()
        while True:
            messages: list[str] = []
            try:
                with captured(messages, pixel_limit):
                    frame = next(it)
            except StopIteration:
                return
            except (ConversionError, UnsupportedInput):
                raise
            except Exception as exc:  # hostile input: wrap at the boundary
                raise _decode_error(exc, path, fmt) from exc
            finally:
                found.extend(messages)
            yield frame
    return iter_frames


def _decode_error(exc: Exception, path: str, fmt: Format) -> ConversionError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if type(exc).__name__ == "DecompressionBombError":
        return _fail("convert.pixel_limit", path, f"too many pixels: {reason}")
    if "truncat" in reason.lower():
        return _fail("convert.truncated", path, f"the {kind_of(fmt)} file is truncated ({reason})")
    return _fail("convert.undecodable", path, f"the {kind_of(fmt)} file cannot be decoded ({reason})")


def _check_limit(path: str, width: int, height: int, frames: int, limit: int) -> None:
    if width <= 0 or height <= 0:
        raise _fail("convert.undecodable", path, f"the image declares {width}x{height} pixels")
    if width * height * frames > limit:
        raise _fail("convert.pixel_limit", path,
                    f"{width}x{height} pixels x {frames} frame(s) exceed the pixel limit of {limit}")


def _pillow_source(data, path, fmt, limit, default_resolution) -> Source:
    import PIL
    from PIL import Image, features
    kind = kind_of(fmt)
    im = Image.open(io.BytesIO(data))
    frames = getattr(im, "n_frames", 1)
    meta = _pillow_metadata(im, fmt, data, path) if kind != "TIFF" else Metadata()
    if im.format == "MPO" and frames > 1:
        meta.dropped.append(f"MPO: {frames - 1} further image(s) in the JPEG (only the primary image is converted)")
        frames = 1
    if frames > 1 and kind in ("GIF", "WebP", "PNG"):
        meta.dropped.append("animation timing (frame durations, loop count)")
    _check_limit(path, im.width, im.height, frames, limit)
    if kind == "TIFF":
        pages = _tiff_pages(data, fmt, frames, default_resolution)
        meta, resolution, assumed = pages[0].meta, pages[0].resolution, pages[0].resolution_assumed
    else:
        resolution, assumed = _resolution(im, fmt, data, meta, default_resolution)
        meta.xmp = _xmp_orientation_reset(meta.xmp, meta.orientation)
        pages = [Page(meta, resolution, assumed)] * frames
    decoder = ("Pillow", PIL.__version__)
    if kind == "JPEG":
        decoder = ("Pillow", f"{PIL.__version__} (libjpeg-turbo {features.version('libjpeg_turbo') or features.version('jpg')})")
    if kind == "JPEG" and im.format == "JPEG" and im.mode in ("L", "RGB") and _ends_with_eoi(data):
        import imagecodecs
        decoder = ("imagecodecs", f"{imagecodecs.__version__} ({imagecodecs.jpeg8_version()})")

    def iter_frames() -> Iterator[Frame]:
        if decoder[0] == "imagecodecs":
            im.close()
            yield _jpeg_frame(data, path, im.size, im.mode, pages[0])
            return
        pixels = 0
        for i in range(frames):
            if i:
                im.seek(i)
            pixels += im.width * im.height      # every frame counts, before it is decoded
            if pixels > limit:
                raise _fail("convert.pixel_limit", path,
                            f"{frames} frames of {pixels} pixels or more exceed the pixel limit of {limit}")
            im.load()
            frame = _pillow_frame(im, path, pages[i])
            if i == frames - 1:
                im.close()      # the decoder's own copy of the pixels is not needed any more
            yield frame

    return Source(fmt, im.width, im.height, im.mode, frames, decoder, meta, resolution, assumed, iter_frames,
                  encoding=_pillow_encoding(im, kind, data))


def _ends_with_eoi(data: bytes) -> bool:
    """True when an end-of-image marker follows the JPEG's last scan (SOS).

    libjpeg only warns on a truncated file and pads it, and imagecodecs ignores the warning: such
    files, and files with trailing data that happens to hold an SOS byte pair (motion photos),
    go to Pillow, which refuses a truncated file.  Entropy-coded data never holds FF D9 (0xFF is
    always stuffed), so a truncated scan cannot look complete.
    """
    eoi = data.rfind(b"\xff\xd9")     # near the end: found at once, where rfind of the SOS would
    return eoi >= 0 and data.find(b"\xff\xda", eoi) < 0   # scan the whole file back to its start


def _jpeg_frame(data: bytes, path: str, size: tuple[int, int], mode: str, page: Page) -> Frame:
    """Grey and RGB JPEG straight into one numpy array with libjpeg-turbo (imagecodecs).

    Twice as fast as Pillow and without Pillow's padded 4-byte copy of the pixels.  Only for
    files that pass `_ends_with_eoi`: imagecodecs does not fail on a truncated file.
    """
    import imagecodecs
    pixels = imagecodecs.jpeg8_decode(data)
    want = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    if pixels.dtype != np.uint8 or pixels.shape != want:
        raise _fail("convert.undecodable", path, f"JPEG decoded to {pixels.dtype} {pixels.shape}, expected {want}")
    return _array_frame(pixels, tiff.RGB if mode == "RGB" else tiff.MINISBLACK, (), mode, page)


def _png16_source(data, path, fmt, limit, default_resolution) -> Source:
    import imagecodecs
    from PIL import Image
    im = Image.open(io.BytesIO(data))   # header and chunks only: metadata, never the pixels
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        raise _fail("convert.mode", path, "animated 16-bit PNG is not supported", UnsupportedInput)
    _check_limit(path, im.width, im.height, 1, limit)
    meta = _pillow_metadata(im, fmt, data, path)
    if "transparency" in im.info:
        meta.dropped.append("PNG tRNS colour key of a 16-bit image")
    resolution, assumed = _resolution(im, fmt, data, meta, default_resolution)
    meta.xmp = _xmp_orientation_reset(meta.xmp, meta.orientation)
    channels = {2: 3, 4: 2, 6: 4}[_png_header(data)[1]]
    mode = {3: "RGB;16", 2: "LA;16", 4: "RGBA;16"}[channels]
    page = Page(meta, resolution, assumed)

    def iter_frames() -> Iterator[Frame]:
        pixels = imagecodecs.png_decode(data)
        if pixels.dtype != np.uint16 or pixels.shape[:2] != (im.height, im.width):
            raise _fail("convert.undecodable", path, "16-bit PNG decoded to an unexpected shape")
        extra = (tiff.UNASSOCIATED_ALPHA,) if channels in (2, 4) else ()
        photometric = tiff.RGB if channels >= 3 else tiff.MINISBLACK
        yield _array_frame(pixels, photometric, extra, mode, page)

    return Source(fmt, im.width, im.height, mode, 1, ("imagecodecs (libpng)", imagecodecs.__version__),
                  meta, resolution, assumed, iter_frames, encoding=_png_encoding(data))


def _tifffile_source(data, path, fmt, limit, default_resolution) -> Source:
    import tifffile
    tf = tifffile.TiffFile(io.BytesIO(data))
    pages = list(tf.pages)
    first = pages[0]
    total = 0
    for page in pages:
        if page.photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB,
                                    tifffile.PHOTOMETRIC.MINISWHITE):
            raise _fail("convert.mode", path, f"16-bit {page.photometric.name} TIFF is not supported",
                        UnsupportedInput)
        if page.sampleformat != 1 or page.bitspersample not in (8, 16) or page.is_tiled and page.imagedepth > 1:
            raise _fail("convert.mode", path, f"TIFF with {page.bitspersample}-bit samples of format "
                        f"{page.sampleformat} is not supported", UnsupportedInput)
        if any(e != tiff.UNASSOCIATED_ALPHA for e in page.extrasamples):
            raise _fail("convert.mode", path, "TIFF extra samples other than unassociated alpha "
                        "are not supported", UnsupportedInput)
        total += page.imagewidth * page.imagelength
    _check_limit(path, first.imagewidth, first.imagelength, 1, limit)
    if total > limit:       # every page counts, whatever its size
        raise _fail("convert.pixel_limit", path,
                    f"{len(pages)} pages of {total} pixels in all exceed the pixel limit of {limit}")
    own = _tiff_pages(data, fmt, len(pages), default_resolution)
    mode = f"{'RGB' if first.photometric == 2 else 'L'}{'A' if first.extrasamples else ''};{first.bitspersample}"

    def iter_frames() -> Iterator[Frame]:
        with tf:
            for page, its in zip(pages, own):
                pixels = page.asarray()
                if page.planarconfig == 2 and pixels.ndim == 3 and page.samplesperpixel > 1:
                    pixels = np.moveaxis(pixels, 0, -1)
                yield _array_frame(np.ascontiguousarray(pixels), int(page.photometric),
                                   tuple(page.extrasamples), mode, its)

    return Source(fmt, first.imagewidth, first.imagelength, mode, len(pages), ("tifffile", tifffile.__version__),
                  own[0].meta, own[0].resolution, own[0].resolution_assumed, iter_frames,
                  encoding=_tiff_encoding(data, first.compression, first.photometric, first.bitspersample,
                                          first.samplesperpixel, first.extrasamples))


# --------------------------------------------------------------------------------------------
# The original's encoding as its header states it, for its MIX: read from what the decoder has
# opened already (Pillow's header fields and tags, tifffile's first page, the bytes in memory),
# never a second opening or decoding of the original.


TIFF_COMPRESSIONS = {1: "Uncompressed", 2: "CCITT 1D", 3: "CCITT Group 3", 4: "CCITT Group 4", 5: "LZW",
                     6: "JPEG (old-style)", 7: "JPEG", 8: "Deflate", 32773: "PackBits", 32946: "Deflate",
                     34712: "JPEG 2000", 34925: "LZMA", 50000: "Zstandard", 50001: "WebP"}
# PNG colour type -> (photometric, samples per pixel)
PNG_COLOUR_TYPES = {0: ("min-is-black", 1), 2: ("RGB", 3), 3: ("palette", 1), 4: ("min-is-black", 2),
                    6: ("RGB", 4)}
TIFF_EXTRA_SAMPLES = {0: "unspecified", 1: "associated alpha", 2: "unassociated alpha"}


def _encoding(compression: str, photometric: str, bits: int, samples: int, extra: str = "", **more) -> dict:
    """The technical keys of an original's encoding (named as a master's are, see write_master)."""
    return {"compression": compression, "photometric": photometric, "bits_per_sample": int(bits),
            "samples_per_pixel": int(samples), "extra_samples": extra, **more}


def _pillow_encoding(im, kind: str, data: bytes) -> dict:
    if kind == "PNG":
        return _png_encoding(data)
    if kind == "TIFF":
        tags = im.tag_v2
        return _tiff_encoding(data, tags.get(259, 1), tags.get(262), _values(tags.get(258, 1))[0],
                              tags.get(277, 1), _values(tags.get(338, ())))
    if kind == "GIF":   # the bits of an index: the size of the global colour table, else of the first local one
        entries = len(im.palette.palette) // 3 if im.palette else 256
        bits = (data[10] & 7) + 1 if data[10] & 0x80 else max(1, (entries - 1).bit_length())
        return _encoding("LZW", "palette", bits, 1)
    if kind == "JPEG":
        return _encoding("JPEG", _jpeg_colour_space(im), getattr(im, "bits", 8), len(im.layer))
    return _encoding(_webp_codec(data), "RGB", 8, len(im.mode), "unassociated alpha" if im.mode == "RGBA" else "")


def _values(value) -> tuple:
    """A TIFF tag's value as Pillow gives it (one value, or a tuple of them) as a tuple."""
    return value if isinstance(value, tuple) else (value,)


def _png_encoding(data: bytes) -> dict:
    depth, colour = _png_header(data)
    photometric, samples = PNG_COLOUR_TYPES[colour]
    return _encoding("Deflate", photometric, depth, samples, "unassociated alpha" if colour in (4, 6) else "")


def _tiff_encoding(data: bytes, compression: int, photometric: int | None, bits: int, samples: int,
                   extrasamples) -> dict:
    code = int(compression)
    extra = TIFF_EXTRA_SAMPLES.get(int(extrasamples[0]), "unspecified") if len(extrasamples) else ""
    return _encoding(TIFF_COMPRESSIONS.get(code, f"TIFF compression {code}"), PHOTOMETRIC.get(photometric, ""),
                     bits, samples, extra, byte_order="little endian" if data[:2] == b"II" else "big endian")


def _jpeg_colour_space(im) -> str:
    """As libjpeg decides it: an Adobe marker's transform, else JFIF means YCbCr, else three
    components named R, G, B are RGB; four components are CMYK (or YCCK, decoded to CMYK)."""
    if len(im.layer) == 1:
        return "min-is-black"
    if len(im.layer) != 3:
        return "separated (CMYK)"
    transform = im.info.get("adobe_transform")
    if transform is not None:
        return "RGB" if transform == 0 else "YCbCr"
    named_rgb = bytes(c[0] for c in im.layer) == b"RGB"
    return "RGB" if named_rgb and "jfif" not in im.info else "YCbCr"


def _webp_codec(data: bytes) -> str:
    """The coding of a WebP's (first) image: its first VP8 or VP8L chunk, inside an ANMF frame too."""
    at = 12
    while at + 8 <= len(data):
        kind, size = data[at:at + 4], int.from_bytes(data[at + 4:at + 8], "little")
        if kind == b"VP8L":
            return "WebP lossless (VP8L)"
        if kind == b"VP8 ":
            return "WebP lossy (VP8)"
        at += 8 + (16 if kind == b"ANMF" else size + (size & 1))
    return "WebP"
