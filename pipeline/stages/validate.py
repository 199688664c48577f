"""validate: every record against its schema, every image by its content.  Writes nothing.

Per item (`validate_item`, run in worker processes): the record against schemas/item.schema.json
(every error, not the first), text XML 1.0 cannot hold, the EDTF date as a calendar date, then the
image: format by signature (pipeline/formats.py), fully decoded by Pillow (16-bit colour by
imagecodecs/tifffile, since Pillow reads it as 8 bits), the pixel limit enforced before decoding;
PNG and GIF files read to their end marker (Pillow stops once it has the pixels).
Decoder warnings -- Python warnings and what libjpeg/libtiff print on file descriptor 2 -- are
caught and reported as `image.warning`, never shown on the terminal.

Per collection (`validate_collection_level`): collection.json against its schema, duplicate
identifiers, names that differ only by Unicode normalization or case, a place spelled two ways.
"""
from __future__ import annotations

import calendar
import json
import re
from array import array
import site
import struct
import sys
import sysconfig
import unicodedata
import zlib
from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime, timedelta
from functools import cached_property, lru_cache, partial
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import imagecodecs
import jsonschema
import numpy
import PIL
import tifffile
from PIL import Image

from .. import formats
from ..imaging import captured, icc_description
from ..errors import Problem, ProcessingError, errors_in, shown
from ..model import Event, Item, Package, Record, pipeline_agent, software_agent
from ..stage import Context, Stage
from .discover import CSV_COLUMNS, load_object

SCHEMA_DIRS = (
    Path(__file__).resolve().parents[2] / "schemas",                       # a checkout / editable install
    Path(sysconfig.get_path("data")) / "share" / "preservation-pipeline" / "schemas",  # pip install .
    Path(sys.prefix) / "share" / "preservation-pipeline" / "schemas",
    Path(site.USER_BASE or "") / "share" / "preservation-pipeline" / "schemas",    # pip install --user
)

# Characters XML 1.0 cannot hold: C0 controls but TAB/LF/CR, lone surrogates, U+FFFE, U+FFFF.
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# UTF-8 read as Windows-1252/Latin-1 ("Ã©", "â€™"), or the replacement character.
MOJIBAKE_UTF8 = re.compile("\\w*(?:Ã[\u0080-\u00bf]|â€|Â[\u00a0-\u00bf]|\ufffd)\\w*")
# A right single quote (U+2019, Windows-1252 0x92) read as Mac Roman "í": "brotherís", "donít".
MOJIBAKE_MACROMAN = re.compile(r"\b[A-Za-z]+í(?:s|t|ll|re|ve|d|m)\b")
EXIF_TOLERANCE = timedelta(days=31)
COLUMN_OF = {fld: col for col, fld in reversed(list(CSV_COLUMNS.items()))}
FORMS = {  # what a pattern in the schemas asks for, in words
    "identifier": "an identifier: ASCII letters, digits, '.', '_', '-', starting with a letter or digit",
    "date": "an EDTF date, e.g. 1992, 1992-02, 1992-02-26, 1992?, 1992~, 199X, 1992-02/1992-03",
    "published": "an EDTF date, e.g. 2017-02-25", "language": "a BCP 47 language tag, e.g. en, az-Latn",
    "contact_email": "an e-mail address",
}
BITS = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}


class TooLarge(Exception):
    """Internal: the image has more pixels than the limit (never leaves this module)."""


# ---- schemas -----------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def load_schema(kind: str) -> dict:
    """schemas/<kind>.schema.json from the checkout, or where `pip install .` put it."""
    wanted = f"urn:preservation-pipeline:schema:{kind}:1"
    for folder in SCHEMA_DIRS:
        path = folder / f"{kind}.schema.json"
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("$id") == wanted:
                return data
    raise ProcessingError(f"{kind}.schema.json not found (looked in {', '.join(map(str, SCHEMA_DIRS))}); "
                          "reinstall the package")


@lru_cache(maxsize=None)
def validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(kind))


def field_of(record: Record, parts: list) -> str:
    """A JSON pointer for a sidecar, `row N, column C` for a metadata.csv row."""
    if record.row is None:
        return "".join("/" + shown(str(p)).replace("~", "~0").replace("/", "~1") for p in parts)
    column = COLUMN_OF.get(str(parts[0])) if parts else None
    return f"row {record.row}, column {column}" if column else f"row {record.row}"


def short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + "...'"


def _reason(error: jsonschema.ValidationError) -> tuple[list, str]:
    """(path parts, a one-line reason) for a schema error; never the whole (long) value."""
    parts = list(error.absolute_path)
    kind, schema = error.validator, error.schema
    if kind == "required":
        name = re.match(r"'(.*)' is a required property", error.message)
        return parts + ([name.group(1)] if name else []), "required, missing"
    if kind == "pattern":
        form = FORMS.get(str(parts[-1]) if parts else "", "the form the schema gives")
        return parts, f"{short(error.instance)} is not {form}"
    if kind == "type":
        return parts, f"must be of type {error.validator_value}, not {type(error.instance).__name__}"
    if kind == "maxLength":
        return parts, f"too long: {len(error.instance)} characters, at most {error.validator_value}"
    if kind == "minLength":
        return parts, "must not be empty"
    return parts, error.message if len(error.message) <= 200 else error.message[:195] + "..."


def schema_problems(record: Record, kind: str) -> list[Problem]:
    code = "record.schema" if kind == "item" else "collection.schema"
    out = []
    errors = sorted(validator(kind).iter_errors(dict(record.data)), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        parts, reason = _reason(error)
        out.append(Problem(code, record.path, reason, field_of(record, parts)))
    return out


def strings(data: Any, parts: tuple = ()) -> Iterator[tuple[tuple, str]]:
    if isinstance(data, str):
        yield parts, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from strings(value, parts + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from strings(value, parts + (i,))


def text_problems(record: Record) -> list[Problem]:
    out = []
    for parts, value in strings(dict(record.data)):
        m = XML_ILLEGAL.search(value)
        if m:
            out.append(Problem("text.control", record.path,
                               f"U+{ord(m.group()):04X} at character {m.start() + 1} cannot be held by XML 1.0; "
                               "remove it", field_of(record, list(parts))))
    return out


def mojibake_problems(record: Record) -> list[Problem]:
    caption = record.data.get("caption")
    if not isinstance(caption, str):
        return []
    language = str(record.data.get("language") or "en").lower()
    found = [(m.group(), _repair(m.group())) for m in MOJIBAKE_UTF8.finditer(caption)]
    if language.startswith("en"):
        found += [(m.group(), m.group().replace("í", "\u2019")) for m in MOJIBAKE_MACROMAN.finditer(caption)]
    if not found:
        return []
    words = ", ".join(f"{bad!r} (perhaps {good!r})" for bad, good in found[:3])
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    return [Problem("caption.mojibake", record.path, f"suspected mojibake: {words}{more}; the text is kept as received",
                    field_of(record, ["caption"]))]


def _repair(word: str) -> str:
    try:
        return word.encode("cp1252").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return word


# ---- EDTF dates --------------------------------------------------------------------------------

def date_bounds(value: str) -> tuple[date, date] | None:
    """Earliest and latest day an EDTF (levels 0-1) value allows; None when open or unbounded.

    Raises ValueError when the value names no calendar day (1992-02-30) or an interval runs backwards.
    """
    if "/" in value:
        first, last = value.split("/", 1)
        a = date_bounds(first) if first not in ("", "..") else None
        b = date_bounds(last) if last not in ("", "..") else None
        if a and b and a[0] > b[1]:
            raise ValueError("the interval ends before it starts")
        if a and b:
            return a[0], b[1]
        return None
    qualified = value[-1:] in "?~%"
    value = value.rstrip("?~%")
    if "T" in value:
        day = datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        return day, day
    if value.startswith(("Y", "-")):
        return None
    year, _, rest = value.partition("-")
    month, _, day_text = rest.partition("-")
    years = range(int(year.replace("X", "0")), int(year.replace("X", "9")) + 1)   # 199X: 1990-1999
    whole_month = not day_text or day_text == "XX"
    if not month or month == "XX" or 21 <= int(month) <= 24:
        first, last = (1, 1), (12, 31)
    else:
        m = int(month)
        first, last = ((m, 1), (m, 28)) if whole_month else ((m, int(day_text)),) * 2
    y0, y1 = _having(years, *first), _having(reversed(years), *last)     # ValueError: no year has it
    if y0 < 1:
        return None  # year 0000 and before: beyond Python's calendar, nothing to compare
    start, end = date(y0, *first), date(y1, *last)
    if whole_month:
        end = end.replace(day=calendar.monthrange(y1, end.month)[1])
    if qualified:
        start, end = _years_later(start, -1), _years_later(end, 1)
    return start, end


def _having(years: Iterable[int], month: int, day: int) -> int:
    """The first of `years` that has this day: 29 February a leap year (0000 is one, as 2000 is)."""
    date(2000, month, day)      # ValueError: no year has it (2000 has every day any year has)
    found = next((y for y in years if (month, day) != (2, 29) or calendar.isleap(y)), None)
    if found is None:
        raise ValueError("29 February in a year that is not a leap year")
    return found


def _years_later(day: date, years: int) -> date:
    """The same day `years` later (28 February for 29 February), within years 1 to 9999."""
    year = min(max(day.year + years, date.min.year), date.max.year)
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February
        return day.replace(year=year, day=28)


def date_problems(record: Record, exif_datetime: str | None) -> list[Problem]:
    value = record.data.get("date")
    pattern = load_schema("item")["properties"]["date"]["pattern"]
    if not isinstance(value, str) or not re.match(pattern, value):
        return []  # the schema reported it
    try:
        bounds = date_bounds(value)
    except (ValueError, OverflowError) as exc:
        return [Problem("record.date", record.path, f"{value!r} is not a calendar date: {exc}",
                        field_of(record, ["date"]))]
    if bounds and exif_datetime:
        taken = datetime.fromisoformat(exif_datetime).date()
        # Differences of dates, not a date moved by the tolerance: year 1 or 9999 cannot move.
        if bounds[0] - taken > EXIF_TOLERANCE or taken - bounds[1] > EXIF_TOLERANCE:
            return [Problem("date.exif_mismatch", record.path,
                            f"the image's EXIF DateTimeOriginal is {exif_datetime}, far from {value!r}",
                            field_of(record, ["date"]))]
    return []


def record_problems(record: Record, kind: str) -> list[Problem]:
    return schema_problems(record, kind) + text_problems(record)


# ---- images ------------------------------------------------------------------------------------

def empty_image_info(fmt: formats.Format | None) -> dict:
    return {"mimetype": fmt.mimetype if fmt else "", "format_name": fmt.name if fmt else "",
            "format_version": fmt.version if fmt else "", "pronom": fmt.pronom if fmt else "",
            "width": None, "height": None, "mode": "", "bits_per_sample": None, "samples": None,
            "frames": None, "has_icc": False, "icc_description": "", "dpi": None,
            "exif_orientation": None, "exif_datetime_original": None}


def _exif(im: Image.Image) -> tuple[int | None, str | None]:
    exif = im.getexif()
    orientation = exif.get(0x0112)
    original = exif.get_ifd(0x8769).get(0x9003)
    when = None
    if isinstance(original, str):
        try:
            when = datetime.strptime(original.strip("\x00 "), "%Y:%m:%d %H:%M:%S").isoformat()
        except ValueError:
            when = None
    return (orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None), when


def _deep_colour(path: Path, fmt: formats.Format, head: bytes, limit: int) -> dict | None:
    """16-bit colour PNG/TIFF decoded at full depth (Pillow would give 8 bits); None otherwise."""
    if fmt.mimetype == "image/png":
        header = formats.png_header(head)
        if not header or header[0] != 16 or header[1] not in (2, 6):
            return None
        array = imagecodecs.png_decode(path.read_bytes())
        lib = software_agent("imagecodecs", imagecodecs.__version__)
    elif fmt.mimetype == "image/tiff":
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            if page.bitspersample != 16 or page.samplesperpixel < 3 or page.photometric != tifffile.PHOTOMETRIC.RGB:
                return None
            if numpy.prod(page.shape[:2]) > limit:
                raise TooLarge(f"{page.shape[1]} x {page.shape[0]} pixels, more than the limit of {limit}")
            array = page.asarray()
        lib = software_agent("tifffile", tifffile.__version__)
    else:
        return None
    samples = array.shape[2] if array.ndim == 3 else 1
    return {"mode": "RGBA;16" if samples == 4 else "RGB;16", "bits_per_sample": 16, "samples": samples,
            "dtype": str(array.dtype), "_agent": lib}


def _bits(path: Path, fmt: formats.Format, head: bytes, mode: str) -> int:
    header = formats.png_header(head)
    if header:
        return header[0]
    if fmt.mimetype == "image/tiff":
        with tifffile.TiffFile(path) as tif:
            bits = tif.pages[0].bitspersample
            return bits if isinstance(bits, int) else int(bits[0])
    return BITS.get(mode, 8)


def _read(f, size: int, end: str) -> bytes:
    data = f.read(size)
    if len(data) < size:
        raise EOFError(f"truncated file: it ends before its {end}")
    return data


def _colour_table(flags: int) -> int:
    """The size of a GIF colour table from the flags byte that announces it."""
    return 3 << (flags & 7) + 1 if flags & 0x80 else 0


def _png_complete(f) -> None:
    """Every chunk of a PNG whole, its CRC right, up to IEND: Pillow stops reading once it has
    the pixels, so a file cut in its last chunks (zlib checksum, CRC, IEND) would decode."""
    read = partial(_read, f, end="IEND chunk")
    f.seek(8)
    while True:
        length, kind = struct.unpack(">I4s", read(8))
        crc = zlib.crc32(kind)
        while length:
            block = read(min(length, 1 << 20))
            crc, length = zlib.crc32(block, crc), length - len(block)
        if struct.unpack(">I", read(4))[0] != crc:
            raise SyntaxError(f"broken PNG file: the {kind.decode('latin-1')!r} chunk's CRC is wrong")
        if kind == b"IEND":
            return


def _gif_complete(f) -> None:
    """A GIF's blocks up to its trailer (0x3B), read as Pillow reads them (unknown bytes skipped):
    Pillow takes the end of the file for the trailer."""
    read = partial(_read, f, end="trailer (0x3B)")

    def sub_blocks() -> None:
        while size := read(1)[0]:
            read(size)
    flags = read(13)[10]
    read(_colour_table(flags))          # global colour table
    while (tag := read(1)) != b";":
        if tag == b"!":
            read(1)
            sub_blocks()
        elif tag == b",":
            flags = read(9)[8]
            read(_colour_table(flags) + 1)     # local colour table, LZW code size
            sub_blocks()


ENDS = {"image/png": _png_complete, "image/gif": _gif_complete}


def decode(path: Path, fmt: formats.Format, head: bytes, limit: int) -> tuple[dict, list]:
    """Everything validation learns by reading the whole image; raises on a broken one."""
    info: dict = {}
    agents = [software_agent("Pillow", PIL.__version__)]
    with Image.open(path) as im:
        width, height = im.size
        if width * height > limit:
            raise TooLarge(f"{width} x {height} = {width * height} pixels, more than the limit of {limit}")
        frames = getattr(im, "n_frames", 1)
        pixels = 0
        if im.format == "JPEG":
            # Every scan is entropy-decoded (a truncated or broken scan fails exactly as in a full
            # decode); only the inverse DCT runs at 1/8 scale: 3x faster, and the convert stage
            # decodes at full size anyway, with its own checks.
            im.draft(im.mode, (max(1, width // 8), max(1, height // 8)))
        for i in range(frames):
            im.seek(i)
            pixels += im.width * im.height      # every frame counts, and before it is decoded
            if pixels > limit:
                raise TooLarge(f"{frames} frames of {pixels} pixels or more, more than the limit of {limit}")
            im.load()
        im.seek(0)
        icc = im.info.get("icc_profile") or b""
        orientation, taken = _exif(im)
        dpi = im.info.get("dpi")
        info.update(width=width, height=height, mode=im.mode, samples=len(im.getbands()), frames=frames,
                    has_icc=bool(icc), icc_description=icc_description(icc),
                    dpi=[float(dpi[0]), float(dpi[1])] if dpi else None,
                    exif_orientation=orientation, exif_datetime_original=taken)
    if fmt.mimetype in ENDS:
        with open(path, "rb") as f:
            ENDS[fmt.mimetype](f)
    info["bits_per_sample"] = _bits(path, fmt, head, info["mode"])
    deep = _deep_colour(path, fmt, head, limit)
    if deep:
        agents.append(deep.pop("_agent"))
        info.update(deep)
    return info, agents


def _is_truncation(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, EOFError) or any(w in text for w in ("truncated", "premature end", "unexpected end",
                                                                "not enough", "end of file", "eof"))


DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, TypeError,
                 ZeroDivisionError, RuntimeError, MemoryError, Image.DecompressionBombError)


def inspect_image(path: Path, rel: str, limit: int) -> tuple[dict, list[Problem], formats.Format | None, list]:
    """(image info, problems, format, library agents) for one image file."""
    try:
        with open(path, "rb") as f:
            head = f.read(formats.HEAD_SIZE)
    except OSError as exc:
        return empty_image_info(None), [Problem("io.read", rel, f"cannot read: {exc.strerror}")], None, []
    if not head:
        return empty_image_info(None), [Problem("image.empty", rel, "zero-byte file")], None, []
    fmt = formats.identify(head)
    info = empty_image_info(fmt)
    if fmt is None:
        return info, [Problem("image.unknown", rel, "no known image signature; not an image this pipeline takes")], None, []
    if not fmt.supported:
        return info, [Problem("image.unsupported", rel, f"{fmt.name} ({fmt.mimetype}) is not an image this "
                                                        "pipeline takes")], fmt, []
    problems = []
    if not formats.extension_matches(fmt, rel):
        problems.append(Problem("image.extension", rel, f"the content is {fmt.name} ({fmt.mimetype}); "
                                                        f"the extension says otherwise"))
    agents: list = []
    messages: list[str] = []
    with captured(messages, pixel_limit=limit):
        try:
            found, agents = decode(path, fmt, head, limit)
            info.update(found)
        except TooLarge as exc:
            problems.append(Problem("image.too_large", rel, f"{exc} (raise it with --pixel-limit)"))
        except Image.DecompressionBombError as exc:
            size = re.search(r"\((\d+) pixels\)", str(exc))
            problems.append(Problem("image.too_large", rel, f"{size.group(1) if size else 'too many'} pixels, more "
                                                            f"than the limit of {limit} (raise it with --pixel-limit)"))
        except DECODE_ERRORS as exc:
            code = "image.truncated" if _is_truncation(exc) else "image.corrupt"
            said = (str(exc) or type(exc).__name__).replace(repr(str(path)), "the file").replace(str(path), "the file")
            problems.append(Problem(code, rel, f"cannot be decoded: {said}"))
    for message in dict.fromkeys(messages):
        problems.append(Problem("image.warning", rel, f"decoder warning: {message[:300]}"))
    return info, problems, fmt, agents


# ---- the stage ---------------------------------------------------------------------------------

def _events(item: Item, ctx: Context, fmt: formats.Format | None, problems: list[Problem], libs: list) -> tuple:
    source = ((ctx.make_id("original", item.relpath), "source"),)
    me = (pipeline_agent(), "executing program")
    identified = Event(
        id=ctx.make_id("event", "format identification", item.relpath), type="format identification",
        datetime=ctx.now(), detail="format identified by signature (magic bytes), not by file extension",
        outcome="success" if fmt else "failure",
        outcome_detail=(f"{fmt.mimetype}; {fmt.name} {fmt.version}".rstrip() + f"; PRONOM {fmt.pronom or 'unknown'}"
                        if fmt else "no known signature"),
        agents=(me,), objects=source,
        extra={"mimetype": fmt.mimetype if fmt else "", "pronom": fmt.pronom if fmt else ""})
    errors = errors_in(problems)
    checked = Event(
        id=ctx.make_id("event", "validation", item.relpath), type="validation", datetime=ctx.now(),
        detail="record checked against item.schema.json; image fully decoded"
               + (" (every scan entropy-decoded, the inverse DCT at 1/8 scale)"
                  if fmt and fmt.mimetype == "image/jpeg" else "") + "; pixel limit "
               f"{ctx.settings.pixel_limit}",
        outcome="failure" if errors else "success",
        outcome_detail="; ".join(p.render() for p in errors) or
                       ("valid, with warnings: " + "; ".join(p.render() for p in problems) if problems else "valid"),
        agents=(me,) + tuple((lib, "validator") for lib in libs) +
               ((software_agent("jsonschema", _version("jsonschema")), "validator"),),
        objects=source)
    return identified, checked


@lru_cache(maxsize=None)
def _version(dist: str) -> str:
    from importlib.metadata import version
    return version(dist)


def read_record(item: Item, ctx: Context) -> tuple[Item, list[Problem]]:
    """The item with its sidecar read, when discovery paired it by name only; a sidecar that
    is not one JSON object leaves the item without a record, with the problem."""
    record = item.record
    if record is None or record.loaded:
        return item, []
    data, problem = load_object(Path(ctx.ingest), record.path)
    if problem is not None:
        return replace(item, record=None), [problem]
    return replace(item, record=Record(record.path, data)), []


def validate_item(item: Item, ctx: Context) -> Item:
    item, problems = read_record(item, ctx)
    record = item.record
    if record is not None:
        problems += record_problems(record, "item") + mojibake_problems(record)
    image, image_problems, fmt, libs = inspect_image(Path(ctx.ingest) / item.relpath, item.relpath,
                                                     ctx.settings.pixel_limit)
    problems += image_problems
    if record is not None:
        problems += date_problems(record, image.get("exif_datetime_original"))
    return replace(item, image=image, events=item.events + _events(item, ctx, fmt, problems, libs),
                   problems=item.problems + tuple(problems))


class Identifiers:
    """Identifiers seen so far, casefolded: the index of the one record using each, or the indexes
    of all of them once it is shared.  Keeps a key and an index per record, not the record."""

    def __init__(self) -> None:
        self.seen: dict[str, int | list[int]] = {}

    def add(self, index: int, record: Record) -> None:
        ident = record.data.get("identifier")
        if isinstance(ident, str) and ident:
            first = self.seen.setdefault(ident.casefold(), index)
            if isinstance(first, list):
                first.append(index)
            elif first != index:
                self.seen[ident.casefold()] = [first, index]

    def wanted(self) -> set[int]:
        return {i for group in self.seen.values() if isinstance(group, list) for i in group}

    def problems(self, records: Mapping[int, Record] | Sequence[Record]) -> list[Problem]:
        out = []
        for group in self.seen.values():
            for index in group if isinstance(group, list) else ():
                record = records[index]
                others = ", ".join(_where(records[o]) for o in group if o != index)
                out.append(Problem("identifier.duplicate", record.path,
                                   f"identifier {record.data['identifier']!r} is also used by {others}",
                                   field_of(record, ["identifier"])))
        return out


class Names:
    """Names per folder, by their NFC casefolded form: the name, or all the names written that way
    once there are two.  Keeps one entry per file and folder, each folder's path once."""

    def __init__(self) -> None:
        self.folders: dict[str, dict[str, str | list[str]]] = {}

    def add(self, path: str) -> None:
        parts = path.split("/")       # not PurePosixPath, which interns every part
        for i, name in enumerate(parts):
            folder = self.folders.setdefault("/".join(parts[:i]), {})
            key = unicodedata.normalize("NFC", name).casefold()
            known = folder.setdefault(key, name)
            if isinstance(known, list):
                if name not in known:
                    known.append(name)
            elif known != name:
                folder[key] = [known, name]

    def problems(self) -> list[Problem]:
        groups = sorted((parent, sorted(names)) for parent, folder in self.folders.items()
                        for names in folder.values() if isinstance(names, list))
        out = []
        for parent, (first, *rest) in groups:
            for name in rest:
                how = ("Unicode normalization (NFC/NFD)" if unicodedata.normalize("NFC", name) ==
                       unicodedata.normalize("NFC", first) else "case")
                rel = f"{parent}/{name}" if parent else name
                out.append(Problem("name.twin", rel, f"differs from {first!r} only by {how}; rename one of them"))
        return out


class Places:
    """Each capitalized word of four letters or more in the records' places, with where it is used
    (record index and place index, two integers per use)."""

    def __init__(self) -> None:
        self.uses: dict[str, array] = {}

    def add(self, index: int, record: Record) -> None:
        place = record.data.get("place")
        for i, part in enumerate(place if isinstance(place, list) else ()):
            for word in re.findall(r"\w+", part) if isinstance(part, str) else ():
                if len(word) >= 4 and word[0].isupper():
                    self.uses.setdefault(word, array("q")).extend((index, i))

    @cached_property
    def rare(self) -> list[tuple[str, str]]:
        """(rarer spelling, most used spelling) for each place name written two ways or more
        (asked once the last record is added)."""
        variants: dict[str, list[str]] = defaultdict(list)
        for word in self.uses:
            variants[_skeleton(word)].append(word)
        out = []
        for words in variants.values():
            if len(words) > 1:
                common = max(sorted(words), key=lambda w: len(self.uses[w]))
                out += [(word, common) for word in sorted(words) if word != common]
        return out

    def wanted(self) -> set[int]:
        return {i for word, _ in self.rare for i in self.uses[word][::2]}

    def problems(self, records: Mapping[int, Record] | Sequence[Record]) -> list[Problem]:
        out = []
        for word, common in self.rare:
            uses = self.uses[word]
            for index, i in zip(uses[::2], uses[1::2]):
                record = records[index]
                out.append(Problem("place.spelling", record.path,
                                   f"{word!r} here, {common!r} in {len(self.uses[common]) // 2} other "
                                   "place(s) of this collection", field_of(record, ["place", i])))
        return out


def twins(paths: Iterable[str]) -> list[Problem]:
    """Names in one folder that differ only by Unicode normalization (NFC/NFD) or by case."""
    found = Names()
    for path in paths:
        found.add(path)
    return found.problems()


def _skeleton(word: str) -> str:
    plain = "".join(c for c in unicodedata.normalize("NFKD", word.casefold()) if not unicodedata.combining(c))
    return re.sub(r"(.)\1+", r"\1", plain.replace("h", ""))


def place_spellings(records: Iterable[Record]) -> list[Problem]:
    """A place name written two ways ("Agdam", "Aghdam"): warn where the rarer spelling is used."""
    records = list(records)
    found = Places()
    for i, record in enumerate(records):
        found.add(i, record)
    return found.problems(records)


def _light(record: Record) -> Record:
    """The record with only what the collection-level checks read (identifier, place): where it
    is, for problems that point at it."""
    return replace(record, data={k: record.data[k] for k in ("identifier", "place") if k in record.data})


def _where(record: Record) -> str:
    return f"{record.path} row {record.row}" if record.row else record.path


def validate_collection_level(package: Package, ctx: Context) -> Package:
    """collection.json against its schema; then, over all the items, duplicate identifiers, name
    twins and place spellings.  One pass keeps a few keys and indexes per item (the items stream
    from disk in `pipeline run`); then only the records the problems point at are read again,
    by their index."""
    problems: list[Problem] = []
    if package.collection is not None:
        problems += record_problems(package.collection, "collection")
    identifiers, names, places = Identifiers(), Names(), Places()
    for index, item in enumerate(package.items):
        names.add(item.relpath)
        if item.record is not None:
            if item.record.row is None:         # its own sidecar (a CSV is the package's)
                names.add(item.record.path)
            identifiers.add(index, item.record)
            places.add(index, item.record)
    for record in package.records:
        names.add(record.path)
    wanted = identifiers.wanted() | places.wanted()
    records = {i: _light(package.items[i].record) for i in sorted(wanted)}     # read by index
    problems += identifiers.problems(records)
    problems += names.problems()
    problems += places.problems(records)
    return replace(package, problems=package.problems + tuple(problems))


STAGE = Stage("validate", per_item=validate_item, collect=validate_collection_level, writes=False)
