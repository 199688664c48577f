"""The corpus of broken collections: one folder per problem code, named after the code it must raise.

    python tests/cases/build.py        rewrites the committed folders tests/cases/<code>/

Each folder is a whole collection (collection.json, a small image, its record) with one defect.
Defects git cannot carry portably -- names with control characters or bytes that are not UTF-8,
NFC/NFD twins (one name on macOS), a name of 240 bytes, a named pipe -- are added at test time by `add_runtime_defect`
to a copy of their folder, which then holds only the healthy part.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import struct
import sys
import zlib
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent

COLLECTION = {"identifier": "case", "title": "A broken collection", "creator": "Test photographer",
              "description": "A collection with one defect.", "rights": "CC0 1.0",
              "organization": {"name": "Test archive"}}
RECORD = {"identifier": "a", "date": "1992-02", "place": ["Azerbaijan", "Karabakh", "Aghdam"],
          "caption": "A caption."}


def jpeg(size=(16, 12), exif=None) -> bytes:
    im = Image.new("RGB", size, (120, 60, 30))
    im.putpixel((1, 1), (250, 250, 250))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90, **({"exif": exif} if exif is not None else {}))
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def corrupt_exif_jpeg() -> bytes:
    """A JPEG whose Exif block claims five entries and holds one: Pillow warns."""
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00" + b"\x12\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00"
    data = jpeg()
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + data[2:]


def dumps(data) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def base(folder: Path, image: bytes | None = None, record: dict | None = None, collection: dict | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "collection.json").write_bytes(dumps(collection or COLLECTION))
    (folder / "a.jpg").write_bytes(image if image is not None else jpeg())
    (folder / "a.json").write_bytes(dumps(record or RECORD))


def exif_dated(when: str) -> Image.Exif:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = when
    return exif


def write(folder: Path, name: str, data: bytes | str) -> None:
    (folder / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


CSV_OK = "filename,dc.identifier,dc.date,dc.coverage,dc.coverage\n"


def build_case(code: str, d: Path) -> None:
    """Write the committed part of the case for `code` into folder d."""
    rec = dict(RECORD)
    if code == "collection.empty":
        d.mkdir(parents=True)
        write(d, "collection.json", dumps(COLLECTION))
    elif code == "collection.missing":
        base(d)
        (d / "collection.json").unlink()
    elif code == "collection.schema":
        base(d, collection={k: v for k, v in COLLECTION.items() if k != "rights"} | {"organization": "Test"})
    elif code in ("csv.column", "csv.header", "csv.row", "record.duplicate"):
        base(d)
        header, row = CSV_OK, "a.jpg,a,1992,Azerbaijan,Aghdam\n"
        if code != "record.duplicate":
            (d / "a.json").unlink()
        if code == "csv.column":
            header, row = header.rstrip("\n") + ",dc.colour\n", row.rstrip("\n") + ",red\n"
        elif code == "csv.header":
            header = "file" + header[len("filename"):]
        elif code == "csv.row":
            row = "a.jpg,a,1992\n"
        write(d, "metadata.csv", header + row)
    elif code == "file.hidden":
        base(d)
        write(d, ".notes.txt", "kept out of sight\n")
    elif code == "file.system":
        base(d)
        write(d, ".DS_Store", b"\x00\x00\x00\x01Bud1")
        (d / "__MACOSX").mkdir()
        write(d / "__MACOSX", "._a.jpg", b"\x00\x05\x16\x07")
    elif code == "identifier.duplicate":
        base(d)
        write(d, "b.jpg", jpeg())
        write(d, "b.json", dumps(RECORD | {"identifier": "A"}))
    elif code == "item.no_record":
        base(d)
        write(d, "b.jpg", jpeg())
    elif code == "path.outside":
        base(d)
        os.symlink("/etc/hostname", d / "b.jpg")
    elif code == "path.symlink":
        base(d)
        os.symlink("a.jpg", d / "b.jpg")
    elif code == "record.ambiguous":
        base(d)
        buf = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buf, "PNG")
        write(d, "a.png", buf.getvalue())
    elif code == "record.encoding":
        base(d)
        write(d, "a.json", json.dumps(RECORD | {"caption": "Café"}, ensure_ascii=False).encode("latin-1"))
    elif code == "record.json":
        base(d)
        write(d, "a.json", '{"identifier": "a", "date": "1992",}\n')
    elif code == "record.no_image":
        base(d)
        write(d, "b.json", dumps(RECORD | {"identifier": "b"}))
    elif code == "record.date":
        base(d, record=rec | {"date": "1992-02-30"})
    elif code == "record.schema":
        base(d, record={"identifier": "a b", "date": "February 1992", "caption": 7, "colour": "red"})
    elif code == "text.control":
        base(d, record=rec | {"caption": "A bell \u0007 rings"})
    elif code == "caption.mojibake":
        base(d, record=rec | {"caption": "He found his brotherís body."})
    elif code == "date.exif_mismatch":
        base(d, image=jpeg(exif=exif_dated("2020:06:01 10:00:00")))
    elif code == "place.spelling":
        base(d)
        write(d, "b.jpg", jpeg())
        write(d, "b.json", dumps(RECORD | {"identifier": "b", "place": ["Azerbaijan", "Agdam"]}))
        write(d, "c.jpg", jpeg())
        write(d, "c.json", dumps(RECORD | {"identifier": "c"}))
    elif code == "image.corrupt":
        good = jpeg((64, 48))
        base(d, image=good[:300] + bytes(range(256)) * 3 + good[-2:])
    elif code == "image.empty":
        base(d, image=b"")
    elif code == "image.extension":
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, "PNG")
        base(d, image=buf.getvalue())
    elif code == "image.too_large":
        base(d, image=png_header_only(30000, 30000))
    elif code == "image.truncated":
        good = jpeg((64, 48))
        base(d, image=good[: len(good) // 2])
    elif code == "image.unknown":
        base(d, image=b"this is not an image\n")
    elif code == "image.unsupported":
        base(d, image=b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n")
    elif code == "image.warning":
        base(d, image=corrupt_exif_jpeg())
    elif code in RUNTIME:
        base(d)
    else:
        raise KeyError(code)


# Codes whose defect is added at test time (see module docstring).
RUNTIME = ("file.not_regular", "name.backslash", "name.control", "name.encoding", "name.too_long", "name.twin")


def add_runtime_defect(code: str, d: Path) -> None:
    if code == "file.not_regular":
        os.mkfifo(d / "b.jpg")
    elif code == "name.backslash":
        write(d, "back\\slash.jpg", jpeg())
        write(d, "back\\slash.json", dumps(RECORD | {"identifier": "b"}))
    elif code == "name.control":
        write(d, "line\nbreak.jpg", jpeg())
        write(d, "line\nbreak.json", dumps(RECORD | {"identifier": "b"}))
    elif code == "name.encoding":
        with open(os.path.join(os.fsencode(d), b"caf\xe9.jpg"), "wb") as f:
            f.write(jpeg())
    elif code == "name.too_long":          # 240 bytes: more than some file systems hold
        write(d, "b" * 236 + ".jpg", jpeg())
        write(d, "b" * 236 + ".json", dumps(RECORD | {"identifier": "b"}))
    elif code == "name.twin":
        write(d, "caf\u00e9.jpg", jpeg())
        write(d, "caf\u00e9.json", dumps(RECORD | {"identifier": "nfc"}))
        write(d, "cafe\u0301.jpg", jpeg())
        write(d, "cafe\u0301.json", dumps(RECORD | {"identifier": "nfd"}))


def all_codes() -> list[str]:
    import tomllib
    codes = HERE.parents[1] / "pipeline" / "codes"
    return sorted(name for area in ("discover", "validate")
                  for name in tomllib.loads((codes / f"{area}.toml").read_text(encoding="utf-8")))


def main() -> None:
    for code in all_codes():
        target = HERE / code
        if target.exists():
            shutil.rmtree(target)
        build_case(code, target)
    print(f"wrote {len(all_codes())} cases in {HERE}", file=sys.stderr)


if __name__ == "__main__":
    main()
