"""Generated source images for the convert tests: every format and mode the stage takes, small.

Each builder returns the file's bytes.  `expected(data)` decodes a source independently of the
pipeline's own code (Pillow + ImageOps.exif_transpose, tifffile or imagecodecs for 16-bit) into
the pixels the master must hold.
"""
from __future__ import annotations

import functools
import io
import shutil
import struct
import subprocess

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

W, H = 64, 48
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title><rdf:Alt>'
       b'<rdf:li xml:lang="x-default">Test title</rdf:li></rdf:Alt></dc:title></rdf:Description>'
       b'</rdf:RDF></x:xmpmeta>')
IPTC = b"\x1c\x02\x78" + struct.pack(">H", 12) + b"Test caption"


def gradient(channels: int = 3, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = 65535 if dtype == np.uint16 else 255
    y, x = np.mgrid[0:H, 0:W]
    planes = [(x * top // W), (y * top // H), ((x + y) * top // (W + H)), (x * y) % (top + 1)][:channels]
    arr = np.stack(planes, -1).astype(np.float64) + rng.normal(0, top / 40, (H, W, channels))
    arr = np.clip(arr, 0, top).astype(dtype)
    return arr[..., 0] if channels == 1 else arr


@functools.lru_cache(maxsize=None)
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def with_iptc(jpeg: bytes) -> bytes:
    """Insert a Photoshop APP13 segment holding IPTC-IIM after the JPEG's SOI."""
    block = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(IPTC)) + IPTC
    block += b"\0" * (len(block) & 1)
    payload = b"Photoshop 3.0\0" + block
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def jpeg(orientation: int = 1, mode: str = "RGB", icc: bool = False, meta: bool = False, dpi=None) -> bytes:
    im = Image.fromarray(gradient(1 if mode == "L" else 3))
    if mode == "CMYK":
        im = Image.fromarray(gradient(4), "CMYK")
    exif = im.getexif()
    if orientation != 1:
        exif[0x0112] = orientation
    kw = {"quality": 90, "exif": exif}
    if meta:
        exif[0x010F] = "TestCam"
        exif[0x0110] = "Model 1"
        exif.get_ifd(0x8769)[0x9003] = "1992:02:26 10:00:00"
        exif[0x8825] = {1: "N", 2: (40.0, 26.0, 0.0), 3: "E", 4: (46.0, 55.0, 0.0)}
        kw["xmp"] = XMP
    if icc:
        kw["icc_profile"] = srgb_icc()
    if dpi:
        kw["dpi"] = dpi
    data = save(im, "JPEG", **kw)
    return with_iptc(data) if meta else data


def png(mode: str) -> bytes:
    if mode == "RGB":
        return save(Image.fromarray(gradient(3)), "PNG", dpi=(150, 150))
    if mode == "L":
        return save(Image.fromarray(gradient(1)), "PNG")
    if mode == "LA":
        return save(Image.fromarray(gradient(2), "LA"), "PNG")
    if mode == "RGBA":
        return save(Image.fromarray(gradient(4), "RGBA"), "PNG", icc_profile=srgb_icc())
    if mode == "P":
        im = Image.fromarray(gradient(3)).quantize(16)
        return save(im, "PNG", transparency=3)
    if mode == "1":
        return save(Image.fromarray(gradient(1) > 128), "PNG")
    if mode == "I;16":
        return save(Image.fromarray(gradient(1, np.uint16)), "PNG")
    if mode == "RGB;16":
        return imagecodecs.png_encode(gradient(3, np.uint16))
    if mode == "RGBA;16":
        return imagecodecs.png_encode(gradient(4, np.uint16))
    if mode == "text":
        from PIL.PngImagePlugin import PngInfo
        info = PngInfo()
        info.add_text("Author", "Somebody")
        return save(Image.fromarray(gradient(3)), "PNG", pnginfo=info)
    raise ValueError(mode)


def tiff(mode: str) -> bytes:
    if mode == "RGB;16":
        buf = io.BytesIO()
        tifffile.imwrite(buf, gradient(3, np.uint16), photometric="rgb", compression="zlib",
                         resolution=(400, 400), resolutionunit="INCH", metadata=None)
        return buf.getvalue()
    if mode == "BE":  # big-endian, descriptive tags and ICC
        buf = io.BytesIO()
        tifffile.imwrite(buf, gradient(3), photometric="rgb", byteorder=">", description="A description",
                         extratags=[(271, "s", 0, "BigEndianCam", True), (34675, "B", 0, srgb_icc(), True)],
                         metadata=None)
        return buf.getvalue()
    if mode == "white16":
        buf = io.BytesIO()
        tifffile.imwrite(buf, gradient(1, np.uint16), photometric="miniswhite", metadata=None)
        return buf.getvalue()
    if mode == "pages":
        buf = io.BytesIO()
        with tifffile.TiffWriter(buf) as tw:
            for seed in range(3):
                tw.write(gradient(3, seed=seed), photometric="rgb", metadata=None)
        return buf.getvalue()
    im = {"RGB": lambda: Image.fromarray(gradient(3)), "CMYK": lambda: Image.fromarray(gradient(4), "CMYK"),
          "1": lambda: Image.fromarray(gradient(1) > 128), "I;16": lambda: Image.fromarray(gradient(1, np.uint16)),
          "L": lambda: Image.fromarray(gradient(1))}[mode]()
    return save(im, "TIFF", compression="tiff_lzw")


def webp(mode: str) -> bytes:
    if mode == "animated":
        frames = [Image.fromarray(gradient(3, seed=s)) for s in range(3)]
        return save(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=100)
    return save(Image.fromarray(gradient(4 if mode == "RGBA" else 3), mode), "WEBP", lossless=True)


def gif(animated: bool = False) -> bytes:
    frames = [Image.fromarray(gradient(3, seed=s)).quantize(32) for s in range(3 if animated else 1)]
    return save(frames[0], "GIF", save_all=animated, append_images=frames[1:], transparency=0,
                duration=100, loop=0)


SOURCES = {
    "rgb.jpg": lambda: jpeg(), "grey.jpg": lambda: jpeg(mode="L"), "cmyk.jpg": lambda: jpeg(mode="CMYK", icc=False),
    "icc.jpg": lambda: jpeg(icc=True), "meta.jpg": lambda: jpeg(meta=True, dpi=(72, 72)),
    "rgb.png": lambda: png("RGB"), "grey.png": lambda: png("L"), "la.png": lambda: png("LA"),
    "rgba.png": lambda: png("RGBA"), "palette.png": lambda: png("P"), "bilevel.png": lambda: png("1"),
    "grey16.png": lambda: png("I;16"), "rgb16.png": lambda: png("RGB;16"), "rgba16.png": lambda: png("RGBA;16"),
    "rgb.tif": lambda: tiff("RGB"), "cmyk.tif": lambda: tiff("CMYK"), "bilevel.tif": lambda: tiff("1"),
    "grey16.tif": lambda: tiff("I;16"), "rgb16.tif": lambda: tiff("RGB;16"), "bigendian.tif": lambda: tiff("BE"),
    "white16.tif": lambda: tiff("white16"),
    "rgb.webp": lambda: webp("RGB"), "rgba.webp": lambda: webp("RGBA"), "palette.gif": lambda: gif(),
}
MULTI = {"pages.tif": (lambda: tiff("pages"), 3), "animated.gif": (lambda: gif(True), 3),
         "animated.webp": (lambda: webp("animated"), 3)}


def expected_frames(data: bytes) -> list[np.ndarray]:
    """The pixels each master must hold, decoded without the pipeline's code."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[24] == 16 and data[25] != 0:
        return [imagecodecs.png_decode(data)]
    if data[:4] in (b"II*\0", b"MM\0*"):
        with tifffile.TiffFile(io.BytesIO(data)) as tf:
            if any(p.bitspersample == 16 and (p.samplesperpixel > 1 or p.photometric == 0) for p in tf.pages):
                return [p.asarray() for p in tf.pages]
    im = Image.open(io.BytesIO(data))
    out = []
    for i in range(getattr(im, "n_frames", 1)):
        im.seek(i)
        frame = ImageOps.exif_transpose(im)
        if frame.mode == "P" or (frame.mode in ("L", "RGB") and "transparency" in frame.info):
            frame = frame.convert("RGBA" if "transparency" in frame.info else "RGB")
        arr = np.asarray(frame)
        out.append(arr.astype("<u2") if arr.dtype.itemsize == 2 else arr)
    return out


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed (CI installs it via .ci/run)")
    return path


def checkit(paths, config) -> subprocess.CompletedProcess:
    return subprocess.run([tool("checkit_tiff"), "-q", str(config), *map(str, paths)],
                          capture_output=True, text=True, timeout=60)
