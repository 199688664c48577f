"""The discover stage: pairing images with sidecars and metadata.csv rows; the name policies."""
from __future__ import annotations

import io
import json
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from PIL import Image

from cases.build import COLLECTION, RECORD, jpeg
from pipeline import validate_collection
from pipeline.errors import errors_in
from pipeline.model import Package, Record
from pipeline.stage import Context, Settings
from pipeline.stages.discover import discover, safe_relpath
from pipeline.stages.validate import read_record, validate_item

ONE = Settings(workers=1)


def make(folder: Path, files: dict[str, bytes | str | dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in {"collection.json": COLLECTION, **files}.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            content = json.dumps(content, ensure_ascii=False)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return folder


def run_discover(folder: Path) -> Package:
    ctx = Context.create(ONE, folder, folder.parent / "out", folder.name)
    return discover(Package(name=folder.name, source=folder, collection=None), ctx)


def test_pairs_sidecars_and_csv_rows_in_subfolders(tmp_path):
    folder = make(tmp_path / "c", {
        "b/z.jpg": jpeg(), "b/z.json": RECORD | {"identifier": "z"},
        "a.jpg": jpeg(), "scan.tif.jpg": jpeg(), "scan.tif.json": RECORD | {"identifier": "s"},
        "metadata.csv": "filename,dc.identifier,dc.date,dc.coverage,dc.coverage,dc.description,dc.subject\n"
                        "a.jpg,a,1992-02,Azerbaijan,Aghdam,\"A caption, with a comma\",mourning\n",
    })
    package = run_discover(folder)
    assert not package.problems
    assert [i.relpath for i in package.items] == ["a.jpg", "b/z.jpg", "scan.tif.jpg"]
    a, z, s = package.items
    assert a.record.path == "metadata.csv" and a.record.row == 1
    assert dict(a.record.data) == {"identifier": "a", "date": "1992-02", "place": ["Azerbaijan", "Aghdam"],
                                   "caption": "A caption, with a comma", "subjects": ["mourning"]}
    assert (z.record.path, s.record.path) == ("b/z.json", "scan.tif.json")
    ctx = Context.create(ONE, folder, tmp_path, "c", COLLECTION["identifier"])
    assert a.id == ctx.make_id("item", "a.jpg")  # ids in the collection identifier's namespace
    assert package.collection.path == "collection.json"
    # the record files no item carries: each sidecar travels with its item only
    assert sorted(r.path for r in package.records) == ["collection.json", "metadata.csv"]


def test_a_csv_row_is_validated_by_the_item_schema(tmp_path):
    folder = make(tmp_path / "c", {
        "a.jpg": jpeg(), "b.jpg": jpeg(),
        "metadata.csv": "filename,dc.identifier,dc.date,dc.coverage\na.jpg,a,1992,Az\nb.jpg,b,Feb 1992,\n"})
    problems = validate_collection(folder, ONE).all_problems
    assert sorted((p.code, p.path, p.field) for p in problems) == [
        ("record.schema", "metadata.csv", "row 2, column dc.coverage"),
        ("record.schema", "metadata.csv", "row 2, column dc.date")]


@pytest.mark.parametrize("name", ["../x.jpg", "/etc/hostname", "a/../../x.jpg", "C:\\x.jpg", "d:/x.jpg"])
def test_csv_paths_that_leave_the_collection(tmp_path, name):
    assert safe_relpath(name) is None
    folder = make(tmp_path / "c", {"a.jpg": jpeg(), "a.json": RECORD,
                                   "metadata.csv": f"filename,dc.identifier\n\"{name}\",x\n"})
    assert [p.code for p in run_discover(folder).problems] == ["path.outside"]


def test_csv_name_with_a_colon_is_a_file_of_the_collection_not_a_drive(tmp_path):
    """`a:b.jpg` is a legal POSIX name; only a drive letter before a slash is a Windows path."""
    assert safe_relpath("a:b.jpg") == "a:b.jpg"
    folder = make(tmp_path / "c", {"a:b.jpg": jpeg(),
                                   "metadata.csv": "filename,dc.identifier,dc.date,dc.coverage\na:b.jpg,a,1992,Az\n"})
    package = run_discover(folder)
    assert not package.problems and [i.relpath for i in package.items] == ["a:b.jpg"]


def test_csv_names_in_nfd_find_the_nfc_file(tmp_path):
    folder = make(tmp_path / "c", {"caf\u00e9.jpg": jpeg(),
                                   "metadata.csv": "filename,dc.identifier,dc.date,dc.coverage\n"
                                                   "cafe\u0301.jpg,a,1992,Az\n"})
    package = run_discover(folder)
    assert not package.problems and package.items[0].record.row == 1


def test_hidden_and_system_files_policy(tmp_path):
    folder = make(tmp_path / "c", {"a.jpg": jpeg(), "a.json": RECORD, ".DS_Store": b"x", "Thumbs.db": b"x",
                                   "._a.jpg": b"x", "__MACOSX/._a.jpg": b"x", ".git/config": "x",
                                   ".hidden.jpg": jpeg(), "Icon\r": b""})
    problems = run_discover(folder).problems
    assert sorted((p.code, p.path, p.severity) for p in problems) == [
        ("file.hidden", ".git", "error"), ("file.hidden", ".hidden.jpg", "error"),
        ("file.system", ".DS_Store", "warning"), ("file.system", "._a.jpg", "warning"),
        ("file.system", "Icon\\r", "warning"),
        ("file.system", "Thumbs.db", "warning"), ("file.system", "__MACOSX", "warning")]
    assert [i.relpath for i in run_discover(folder).items] == ["a.jpg"]


def test_symlinked_folder_is_not_followed(tmp_path):
    outside = make(tmp_path / "elsewhere", {"x.jpg": jpeg(), "x.json": RECORD})
    folder = make(tmp_path / "c", {"a.jpg": jpeg(), "a.json": RECORD})
    (folder / "more").symlink_to(outside, target_is_directory=True)
    package = run_discover(folder)
    assert [(p.code, p.path) for p in package.problems] == [("path.outside", "more")]
    assert [i.relpath for i in package.items] == ["a.jpg"]


def test_json_that_is_not_an_object_or_has_duplicate_keys(tmp_path):
    folder = make(tmp_path / "c", {"a.jpg": jpeg(), "a.json": "[1, 2]", "b.jpg": jpeg(),
                                   "b.json": '{"identifier": "b", "identifier": "c"}', "d.jpg": jpeg(),
                                   "d.json": '{"identifier": NaN}'})
    package = run_discover(folder)
    assert package.problems == () and all(not i.record.loaded for i in package.items), "paired by name"
    ctx = Context.create(ONE, folder, folder.parent / "out", folder.name)
    items = [read_record(i, ctx) for i in package.items]     # the validate stage reads them
    assert [(p.code, p.path) for _, found in items for p in found] == [
        ("record.json", "a.json"), ("record.json", "b.json"), ("record.json", "d.json")]
    assert all(i.record is None for i, _ in items)


def test_discovery_reads_no_record_the_validate_stage_reads_each(tmp_path):
    """Discovery pairs sidecars by name and holds only their places (a 100,000-photograph
    collection's records are not all in memory at once); validation reads each one."""
    folder = make(tmp_path / "c", {"a.jpg": jpeg(), "a.json": RECORD | {"identifier": "a"}})
    item = run_discover(folder).items[0]
    assert (item.record.path, dict(item.record.data), item.record.loaded) == ("a.json", {}, False)
    ctx = Context.create(ONE, folder, folder.parent / "out", folder.name)
    read, problems = read_record(item, ctx)
    assert problems == [] and read.record == Record("a.json", RECORD | {"identifier": "a"})
    assert validate_item(item, ctx).record.data["identifier"] == "a"


NAME_CHARS = st.one_of(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    st.sampled_from(["%", "..", ".", "\r", "\n", "e\u0301", "\u00e9", " ", "\u05d0", "\u0627", "%2F", "~", "\\"]),
)
NAMES = (st.lists(NAME_CHARS, min_size=1, max_size=12).map("".join)
         .filter(lambda s: s not in (".", "..") and len((s + ".json").encode()) < 200))


@hsettings(max_examples=60, deadline=None)
@given(stem=NAMES)
def test_any_file_name_is_paired_or_refused_with_a_reason(stem):
    with tempfile.TemporaryDirectory() as tmp:
        folder = make(Path(tmp) / "c", {f"{stem}.jpg": jpeg(), f"{stem}.json": RECORD})
        package = validate_collection(folder, ONE)
        codes = {p.code for p in package.all_problems}
        for p in package.all_problems:
            assert "\n" not in p.render() and "\r" not in p.render()
        if stem.startswith("._"):  # AppleDouble litter, whatever follows
            assert codes == {"file.system", "collection.empty"}
        elif any(unicodedata.category(c) == "Cc" for c in stem):
            assert "name.control" in codes and not package.items
        elif "\\" in stem:
            assert "name.backslash" in codes and not package.items
        elif stem.startswith("."):
            assert "file.hidden" in codes
        else:
            assert not errors_in(package.all_problems), [p.render() for p in package.all_problems]
            assert [i.relpath for i in package.items] == [f"{stem}.jpg"]  # the name as received


@hsettings(max_examples=25, deadline=None)
@given(stem=NAMES.filter(lambda s: unicodedata.normalize("NFC", s) != unicodedata.normalize("NFD", s)
                         and not s.startswith(".") and "\\" not in s
                         and not any(unicodedata.category(c) == "Cc" for c in s)))
def test_nfc_nfd_twins_are_refused(stem):
    with tempfile.TemporaryDirectory() as tmp:
        nfc, nfd = unicodedata.normalize("NFC", stem), unicodedata.normalize("NFD", stem)
        folder = make(Path(tmp) / "c", {f"{nfc}.jpg": jpeg(), f"{nfc}.json": RECORD,
                                        f"{nfd}.jpg": jpeg(), f"{nfd}.json": RECORD | {"identifier": "b"}})
        codes = [p.code for p in validate_collection(folder, ONE).all_problems]
        assert codes.count("name.twin") == 2  # the image and its record


def test_sidecars_no_image_claims_stay_the_packages_and_their_names_are_still_checked(tmp_path):
    folder = make(tmp_path / "c", {
        "a.jpg": jpeg(), "a.json": RECORD | {"identifier": "a"}, "A.json": RECORD | {"identifier": "b"},
        "x/orphan.json": RECORD | {"identifier": "c"}})
    package = run_discover(folder)
    assert [(i.relpath, i.record.path) for i in package.items] == [("a.jpg", "a.json")]
    assert sorted(r.path for r in package.records) == ["A.json", "collection.json", "x/orphan.json"]
    problems = validate_collection(folder, ONE).all_problems
    assert sorted((p.code, p.path) for p in problems) == [
        ("name.twin", "a.json"), ("record.no_image", "A.json"), ("record.no_image", "x/orphan.json")]


def test_csv_column_names_are_shown_escaped_csv_column(tmp_path):
    """A header cell holding an escape sequence or a line break must not reach the terminal raw."""
    folder = make(tmp_path / "c", {"a.jpg": jpeg(), "metadata.csv":
                                   'filename,dc.identifier,"\x1b[2Jnew\nline",dc.date,dc.date\na.jpg,a,x,1992,1993\n'})
    problems = [p for p in run_discover(folder).problems if p.code == "csv.column"]
    assert [p.field for p in problems] == ["column \\x1b[2Jnew\\nline", "column dc.date", "column dc.date"]
    assert all(p.render().isprintable() for p in problems)


def test_an_image_name_too_long_for_the_names_derived_from_it_is_refused_name_too_long(tmp_path):
    """Every name the pipeline derives from an image's must fit in 255 bytes: at the budget (236
    bytes) `pipeline run` seals the bag, even for the longest derivation (a multi-frame master of
    an image without extension, '.<name>.f0001.tif.proving'); one byte more is refused up front."""
    from conftest import no_traceback, run_cli
    frames = io.BytesIO()
    Image.new("RGB", (8, 6), "red").save(frames, "GIF", save_all=True, append_images=[Image.new("RGB", (8, 6), "blue")])
    fits = make(tmp_path / "in" / "fits", {"b" * 232 + ".jpg": jpeg(), "b" * 232 + ".json": RECORD, "g" * 236:
                                           frames.getvalue(), "g" * 236 + ".json": RECORD | {"identifier": "g"}})
    proc = run_cli("run", fits, "--output", tmp_path / "out", "-q")
    assert proc.returncode == 0 and no_traceback(proc), proc.stdout + proc.stderr
    assert len(list((tmp_path / "out").glob("fits*/data/objects/preservation/" + "g" * 236 + ".f000[12].tif"))) == 2
    long = make(tmp_path / "in" / "long", {"b" * 233 + ".jpg": jpeg(), "b" * 233 + ".json": RECORD})
    problems = validate_collection(long, ONE).all_problems
    assert [(p.code, p.path) for p in problems] == [("name.too_long", "b" * 233 + ".jpg")]
    assert "237 bytes" in problems[0].reason and "at most 236" in problems[0].reason


@pytest.mark.parametrize("image,sidecar", [("caf\u00e9", "cafe\u0301"), ("cafe\u0301", "caf\u00e9")])
def test_a_sidecar_in_the_other_normalization_finds_its_image_not_record_no_image(tmp_path, image, sidecar):
    """macOS writes NFD, Linux NFC: a sidecar whose name is the image's in the other form is its
    record when that form names one image only (as metadata.csv filenames are matched)."""
    folder = make(tmp_path / "c", {f"{image}.jpg": jpeg(), f"{sidecar}.json": RECORD})
    package = validate_collection(folder, ONE)
    assert not errors_in(package.all_problems), [p.render() for p in package.all_problems]
    assert [(i.relpath, i.record.path) for i in package.items] == [(f"{image}.jpg", f"{sidecar}.json")]
    # the image's exact sidecar wins; the other form is a twin of it, never silently dropped
    make(folder, {f"{image}.json": RECORD | {"identifier": "b"}})
    package = validate_collection(folder, ONE)
    assert [(i.relpath, i.record.path) for i in package.items] == [(f"{image}.jpg", f"{image}.json")]
    assert sorted(p.code for p in package.all_problems) == ["name.twin", "record.no_image"]


def test_two_sidecars_of_one_image_are_record_duplicate_and_name_twin(tmp_path):
    """a.json and a.JSON beside a.jpg: the second once overwrote the first's pairing and, no
    longer listed anywhere, vanished from the bag without a word."""
    folder = make(tmp_path / "c", {"a.jpg": jpeg(), "a.json": RECORD | {"identifier": "a"},
                                   "a.JSON": RECORD | {"identifier": "b"}})
    problems = validate_collection(folder, ONE).all_problems
    assert {(p.code, p.path) for p in errors_in(problems)} >= {("record.duplicate", "a.json"), ("name.twin", "a.json")}


def test_an_image_named_like_the_collection_record_is_not_told_to_add_it(tmp_path):
    """collection.jpg at the root: its sidecar's name is the collection record's, which is there
    already; the advice was to add collection.json beside it."""
    folder = make(tmp_path / "c", {"collection.jpg": jpeg()})
    [problem] = [p for p in run_discover(folder).problems if p.code == "item.no_record"]
    assert problem.reason == ("no record: rename it (collection.json beside it is the collection's record) "
                              "or add a row in metadata.csv")
