#!/usr/bin/env python3
"""Build the sample collection ingest/khojaly-1992/ from the published photo essay.

    python ingest/make_sample.py [TARGET_FOLDER]      (default: ingest/khojaly-1992 beside this file)

Deterministic: the same Pillow/numpy/tifffile versions write the same bytes on every run.  Run it
as a script, never import it (an import would leave ingest/__pycache__/, which the pipeline would
take for a collection).

Source: the essay published 2017-02-25, "Famous Azerbaijani photographer Reza Deghati presented the
photos taken immediately after the tragedy in Khojaly" (shared/seed/000_7191bcfe2ae59ee2.txt).
Reading of the page: after the introduction, the essay is a run of place/date lines ("Azerbaijan,
Karabakh, Aghdam, February 1992"), one per photograph -- 20 in all -- each followed by that
photograph's caption, if it has one.  A caption always follows its place/date line (the place
lines of photographs 6, 9 and 18 -- Southern Village, South Eastern Mountains, Shusha -- are each
followed by a caption about that place), so two place/date lines in a row mean the first
photograph has no caption: photographs 3 and 8.  The paragraph before the first place/date line
("After the Khojaly massacre, the International Red Cross organized a cease-fire...") is the
essay's introduction, not a caption.  Captions are kept exactly as published, encoding damage
included ("brotherís", "memberís", "Azerbaijanís"), and so is the spelling "Agdam" of photograph 3.

We do not hold the photographs.  Each image is a generated placeholder, visibly marked as one, in
a format chosen to exercise the pipeline (see VARIANTS).
"""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageCms, ImageDraw, ImageFont

COLLECTION = "khojaly-1992"
PHOTOGRAPHER = "Reza Deghati"
MARK = f"PLACEHOLDER - original photograph by {PHOTOGRAPHER} not held"

LEAD = ("Famous Azerbaijani photographer Reza Deghati presented the photos taken immediately after the "
        "tragedy in Khojaly.")
BIOGRAPHY = (
    "A world-renowned Azerbaijani photographer Reza Deghati was born in 1952 in Tabriz.\n\n"
    "He visited Azerbaijan for the first time in 1987. In 1997 he lived in the country for several months, "
    "traveling to Azerbaijan and taking people's lives. Since 1981 he lives and works in Paris. \"National "
    "Geographic\" channel filmed a lot of documentaries related to his work. Among them, the documentary "
    "\"Frontline Diary\", which won an \"Emmy\" award in 2002.")
INTRODUCTION = (
    "Photos taken immediately after occurrence of the Khojaly tragedy.\n\n"
    "After the Khojaly massacre, the International Red Cross organized a cease-fire to enable the Red Cross "
    "to return the corpses of Azerbaijanis killed in Khojaly. The 2,500 remaining inhabitants (23,757 before "
    "the war) found themselves without electricity, heating oil, water, or food and thus sought the safe "
    "passage they were promised. Instead, Armenian armed forces and members of the 366 Soviet infantry "
    "regiment were waiting to gun them As a result of this massacre 613 people were killed, 487 were "
    "severely injured. Those who escaped the gunfire only wounded had to trek through the mountains to find "
    "safety, many perished in the cold. 1275 people were taken hostage. Those who survived would visit the "
    "mosque of Aghdam, used as a morgue, to search for their disappeared loved ones. They wandered among "
    "dozens of corpses, brought by the Red Cross, wrapped in body bags.")

AGHDAM = "Azerbaijan, Karabakh, Aghdam, February 1992"
ROAD = "Azerbaijan, Road between Khojaly and Aghdam, March 1992"

# (place/date line, caption or None), in the essay's order; verbatim.
PHOTOGRAPHS = [
    (AGHDAM, "The woman standing among the men just identified the bodies of her relatives."),
    (AGHDAM, "A survivor of the massacre grasps onto a photograph of his missing son, asking the other "
             "families if they have seen him."),
    ("Azerbaijan, Road between Khojaly and Agdam, March 1992", None),
    (AGHDAM, "A man waits outside the morgue for the body of his dead relative. He has prepared the coffin "
             "and white shroud (Kafan) to wrap the body in accordance with Muslim burial rituals."),
    (AGHDAM, "A survivor mourns, she waits to prepare her relatives bodies for burial in accordance with "
             "Muslim tradition."),
    ("Azerbaijan, Karabakh, Southern Village, February 1992",
     "In a southern village of the Karabakh, a makeshift hospital was set up in a school to tend to all of "
     "the wounded Azerbaijanis. A man supports his wounded brother who was shot in the head by an Armenian "
     "sniper. Many people were shot directly in the head by professional snipers, many of whom come from "
     "other countries to fight in the Karabakh."),
    (ROAD, "Azerbaijani prisoners, who were held by Armenians, wait to be reunited with their families."),
    (AGHDAM, None),
    ("Azerbaijan, Karabakh, South Eastern Mountains, 1992", "Azerbaijani soldiers patrol a mountain road."),
    (AGHDAM, "Family members wait outside of the morgue to bury the bodies of their loved ones in the park "
             "nearby."),
    (AGHDAM, "As the body of a man is unloaded from a Red Cross vehicle, one of the women waiting nearby "
             "realizes that it is her husband."),
    (AGHDAM, "A woman standings has just identified the body of her son that was brought from Khojaly by "
             "Red Cross."),
    (AGHDAM, "\"Ahad, o, Ahad,\" a man screams in anguish after just finding his brotherís dead body."),
    (AGHDAM, "A survivor waits outside the morgue after finding the body of her husband. Such grief has led "
             "her to scratch her face so aggressively that her cheeks are streaked with blood."),
    (AGHDAM, "The grave of a mother and son is covered in red carnations."),
    (AGHDAM, "A survivor runs out of the morgue wailing after finding her family memberís bodies inside."),
    (AGHDAM, "This woman had just found her son and her husband disabled and killed."),
    ("Azerbaijan, Karabakh, Shusha, 1992",
     "On May 8, 1992, the Armenian military launched their operation to capture the city of Shusha. The "
     "region had been encircled by Armenian troops for a few months leading up to the invasion. During the "
     "siege, most of the city was destroyed by bombs so the Azerbaijani soldiers used the school in the city "
     "as their living quarters. Shusha was the historical and cultural center of the Karabakh region and "
     "Azerbaijanís last strategic foothold in the Karabakh."),
    (AGHDAM, "A family members prepare them for burial in accordance with Muslim tradition. Two brothers place "
             "the body of their dead brother, in a coffin after having wrapped his body in a white shroud "
             "(Kafan)."),
    (ROAD, "After the Khojaly massacre, the International Red Cross organized a local cease-fire to allow both "
           "sides to exchange prisoners and to enable the Red Cross to return the corpses of Azerbaijanis "
           "killed in Khojaly to the people who survived the massacre and took refuge in the neighboring town "
           "of Aghdam. An Azerbaijani hostage is reunited with his family after being held captive by Armenian "
           "armed forces."),
]

# Photograph number -> how its placeholder is written.  Unlisted numbers: baseline RGB JPEG.
VARIANTS = {
    2: "jpeg-orientation-6", 3: "jpeg-grey", 4: "jpeg-cmyk", 5: "jpeg-icc", 6: "png-rgba",
    7: "tiff-grey16", 8: "png-rgb16", 9: "jpeg-orientation-3", 10: "jpeg-progressive",
    11: "jpeg-orientation-8", 12: "jpeg-grey",
}
MONTHS = {"February": "02", "March": "03"}
ORIENTATION_STORE = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def parse_line(line: str) -> tuple[list[str], str, str]:
    """'Azerbaijan, Karabakh, Aghdam, February 1992' -> (place broad to narrow, EDTF date, worded date)."""
    parts = [p.strip() for p in line.split(",")]
    worded = parts.pop()
    words = worded.split()
    edtf = f"{words[1]}-{MONTHS[words[0]]}" if len(words) == 2 else words[0]
    return parts, edtf, worded


def item_record(n: int, line: str, caption: str | None) -> dict:
    place, edtf, worded = parse_line(line)
    record = {"identifier": f"{COLLECTION}-{n:02d}", "title": line, "date": edtf, "date_original": worded,
              "place": place}
    if caption is not None:
        record["caption"] = caption
    record.update(creator=PHOTOGRAPHER, language="en",
                  source=f"Photo essay published 2017-02-25, photograph {n} of {len(PHOTOGRAPHS)}")
    notes = [] if caption is not None else ["Published without a caption."]
    if "Agdam" in line:
        notes.append("The essay spells the place 'Agdam' here and 'Aghdam' elsewhere; kept as published.")
    if any(w in (caption or "") for w in ("brotherís", "memberís", "Azerbaijanís")):
        notes.append("The caption's encoding damage ('í' for an apostrophe) is kept as published.")
    notes.append(f"The image is a generated placeholder ({VARIANTS.get(n, 'jpeg-rgb')}); the photograph is not held.")
    record["notes"] = " ".join(notes)
    return record


def collection_record() -> dict:
    return {
        "identifier": COLLECTION,
        "title": "Khojaly 1992: photographs by Reza Deghati",
        "creator": PHOTOGRAPHER,
        "description": f"{LEAD}\n\n{INTRODUCTION}",
        "source": f"Photo essay published 2017-02-25: \"{LEAD}\"",
        "published": "2017-02-25",
        "date": "1992",
        "rights": "The photographs are by Reza Deghati; their rights are his. This sample holds none of them: "
                  "its images are placeholders generated by ingest/make_sample.py.",
        "language": "en",
        "subjects": ["Khojaly massacre, 1992", "Nagorno-Karabakh conflict, 1988-1994", "Aghdam (Azerbaijan)"],
        "organization": {"name": "preservation-pipeline sample data (replace with the keeping organization)"},
        "notes": (
            "PLACEHOLDER IMAGES: the 20 images are generated placeholders, each marked 'PLACEHOLDER - original "
            "photograph by Reza Deghati not held'; the photographs themselves are not held. Their formats vary "
            "on purpose (JPEG with EXIF orientation, CMYK and ICC profile; PNG with transparency; 16-bit "
            "greyscale TIFF scan; 16-bit RGB PNG) and their EXIF data is synthetic. "
            "Records: one per place/date line of the essay, in its order; each line is followed by its "
            "photograph's caption, if any (photographs 3 and 8 have none); the paragraph before the first line "
            "is the introduction, here in the description. Captions are verbatim, encoding damage included. "
            f"About the photographer, from the essay: {BIOGRAPHY}"),
    }


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def picture(n: int, line: str, size: tuple[int, int]) -> Image.Image:
    """An RGB placeholder: a smooth field, a frame, and the placeholder notice."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    hue = (n * 37) % 256
    rgb = np.stack([(x * 200 // w + hue) % 256, (y * 200 // h + 2 * hue) % 256,
                    ((x + y) * 100 // (w + h) + 3 * hue) % 256], axis=-1).astype(np.uint8)
    im = Image.fromarray(rgb, "RGB")
    draw = ImageDraw.Draw(im)
    draw.rectangle([12, 12, w - 13, h - 13], outline=(255, 255, 255), width=6)
    draw.rectangle([30, h // 2 - 90, w - 31, h // 2 + 90], fill=(0, 0, 0))
    draw.text((w // 2, h // 2 - 45), "PLACEHOLDER", font=_font(44), fill=(255, 255, 255), anchor="mm")
    draw.text((w // 2, h // 2 + 5), f"original photograph by {PHOTOGRAPHER} not held", font=_font(min(22, w // 30)),
              fill=(255, 255, 255), anchor="mm")
    draw.text((w // 2, h // 2 + 45), f"{COLLECTION}-{n:02d}", font=_font(26), fill=(255, 220, 120), anchor="mm")
    draw.text((24, h - 50), line, font=_font(min(18, w // 40)), fill=(255, 255, 255))
    draw.text((24, 24), MARK, font=_font(min(14, w // 50)), fill=(255, 255, 255))
    return im


def srgb_profile() -> bytes:
    """An sRGB ICC profile with a fixed creation date (lcms stamps the current time otherwise)."""
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[24:36] = struct.pack(">6H", 2017, 2, 25, 0, 0, 0)
    return bytes(icc)


def deepen(im: Image.Image) -> np.ndarray:
    """8-bit pixels to 16 bits whose low byte carries detail (so a cut to 8 bits would lose data)."""
    a = np.asarray(im).astype(np.uint16)
    y, x = np.mgrid[0:a.shape[0], 0:a.shape[1]]
    low = ((x * 7 + y * 3) % 256).astype(np.uint16)
    return a * 256 + (low[..., None] if a.ndim == 3 else low)


def write_image(folder: Path, n: int, line: str) -> str:
    """Write photograph n's placeholder; returns its path relative to the collection."""
    variant = VARIANTS.get(n, "jpeg-rgb")
    portrait = variant.startswith("jpeg-orientation") or n % 5 == 0
    size = (600, 800) if portrait else (800, 600)
    im = picture(n, line, size)
    name = f"{COLLECTION}-{n:02d}"
    if variant.startswith("tiff") or variant.endswith("16"):
        folder = folder / "scans"
        folder.mkdir(exist_ok=True)
        prefix = "scans/"
    else:
        prefix = ""
    if variant == "tiff-grey16":
        rel = f"{name}.tif"
        tifffile.imwrite(folder / rel, deepen(im.convert("L")), photometric="minisblack", metadata=None,
                         resolution=(600, 600), resolutionunit="INCH")
    elif variant == "png-rgb16":
        rel = f"{name}.png"
        import imagecodecs
        (folder / rel).write_bytes(imagecodecs.png_encode(deepen(im), level=9))
    elif variant == "png-rgba":
        rel = f"{name}.png"
        rgba = im.convert("RGBA")
        alpha = np.full((size[1], size[0]), 255, np.uint8)
        alpha[:, : size[0] // 6] = np.linspace(0, 255, size[0] // 6, dtype=np.uint8)
        alpha[:40, :] = 0
        rgba.putalpha(Image.fromarray(alpha, "L"))
        rgba.save(folder / rel, optimize=False)
    else:
        rel = f"{name}.jpg"
        options: dict = {"quality": 85, "dpi": (300, 300)}
        if variant.startswith("jpeg-orientation"):
            orientation = int(variant.rsplit("-", 1)[1])
            im = im.transpose(ORIENTATION_STORE[orientation])
            exif = Image.Exif()
            exif[0x0112] = orientation
            if orientation == 6:
                exif.get_ifd(0x8769)[0x9003] = "1992:02:27 12:00:00"
            options["exif"] = exif
        elif variant == "jpeg-grey":
            im = im.convert("L")
        elif variant == "jpeg-cmyk":
            im = im.convert("CMYK")
        elif variant == "jpeg-icc":
            options["icc_profile"] = srgb_profile()
        elif variant == "jpeg-progressive":
            options["progressive"] = True
        im.save(folder / rel, "JPEG", **options)
    return prefix + rel


def dump(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def build(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    dump(target / "collection.json", collection_record())
    for n, (line, caption) in enumerate(PHOTOGRAPHS, start=1):
        rel = write_image(target, n, line)
        dump((target / rel).with_suffix(".json"), item_record(n, line, caption))


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / COLLECTION)
