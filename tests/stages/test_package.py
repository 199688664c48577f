"""The package stage: BagIt 1.0 bags from the staging folder, checked by bagit-python."""
from __future__ import annotations

import fnmatch
import json
import os
import unicodedata
from dataclasses import replace
from pathlib import Path

import bagit
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from helpers_stages import make_collection
from package_helpers import ROOT_SCHEMAS, bagit_valid, build, pipeline_valid, tree_bytes
from pipeline import bagwrite
from pipeline.bag import find_manifests, parse_manifest, read_tag_file
from pipeline.errors import PackagingError
from pipeline.filetable import FileTable
from pipeline.hashing import hash_file
from pipeline.metscheck import check_mets
from pipeline.stage import Settings
from pipeline.stages.package import STAGE, check_sealed, is_leftover, package_collection


def codes(exc: PackagingError) -> set[str]:
    return {p.code for p in exc.problems}


def sealed_check(bag, package, algorithms=("sha256", "sha512")):
    """check_sealed of `bag` against the package's files, through a FileTable as the stage does."""
    with FileTable(bag.parent / ".staging") as files:
        files.add(package.payload())
        return check_sealed(bag, files, algorithms)


def package(tmp_path, **kwargs):
    pkg, ctx = build(tmp_path / "output", **kwargs)
    return package_collection(pkg, ctx), ctx


def refused(pkg, ctx, code: str) -> PackagingError:
    """The stage refuses with exactly `code`, and output/ gains nothing."""
    with pytest.raises(PackagingError) as err:
        package_collection(pkg, ctx)
    assert codes(err.value) == {code}
    assert [p.name for p in ctx.output.iterdir()] == [".staging"]
    assert not list((ctx.output / ".staging").glob(".files-*")), "the file table is removed on failure"
    return err.value


def test_stage_contract():
    assert STAGE.name == "package" and STAGE.per_item is None and STAGE.collect is package_collection


def test_bag_validates_with_bagit_python(tmp_path):
    result, ctx = package(tmp_path)
    bag = ctx.output / "coll"
    assert result.published == ("coll",)
    assert bagit_valid(bag)
    assert (bag / "bagit.txt").read_bytes() == b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    assert sorted(p.name for p in bag.iterdir()) == [
        "bag-info.txt", "bagit.txt", "data", "manifest-sha256.txt", "manifest-sha512.txt",
        "tagmanifest-sha256.txt", "tagmanifest-sha512.txt"]
    assert not ctx.staging.exists(), "the staging folder was renamed into place"
    assert sorted(p.name for p in (ctx.output / ".staging").iterdir()) == []


def test_bag_info_fields_come_from_the_collection_record(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    result, ctx = package(tmp_path)
    info = dict(read_tag_file(ctx.output / "coll" / "bag-info.txt"))
    total = sum(f.size for f in list(result.payload()))
    assert info == {
        "Source-Organization": "Test Archive",
        "Organization-Address": "1 Main Street, Town",
        "Contact-Name": "Ann Archivist",
        "Contact-Phone": "+1 555 0100",
        "Contact-Email": "ann@example.org",
        "External-Identifier": "coll-1",
        "External-Description": "Photographs made for the tests, over two lines.",
        "Bagging-Date": "2023-11-14",
        "Bag-Software-Agent": "preservation-pipeline 0.1.0",
        "BagIt-Profile-Identifier": bagwrite.PROFILE_ID,
        "Payload-Oxum": f"{total}.{len(list(result.payload()))}",
        "Bag-Size": bagwrite.human_size(total),
    }


def test_settings_organization_overrides_the_record(tmp_path):
    _, ctx = package(tmp_path, settings=Settings(organization="Other Org"))
    assert dict(read_tag_file(ctx.output / "coll" / "bag-info.txt"))["Source-Organization"] == "Other Org"


def test_manifests_list_every_payload_file_with_both_algorithms(tmp_path):
    result, ctx = package(tmp_path)
    bag = ctx.output / "coll"
    expected = {f.bagpath for f in list(result.payload())}
    for alg in ("sha256", "sha512"):
        entries = parse_manifest(bag / f"manifest-{alg}.txt").entries
        assert [e.path for e in entries] == sorted(expected)
        for e in entries:
            assert hash_file(bag / e.path, [alg])[1][alg] == e.digest
        tags = parse_manifest(bag / f"tagmanifest-{alg}.txt").entries
        assert {e.path for e in tags} == {"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest-sha512.txt"}


def test_manifests_are_written_from_recorded_checksums_never_by_rereading(tmp_path):
    pkg, ctx = build(tmp_path / "output")
    first = pkg.items[0]
    forged = replace(first.original, checksums={"sha256": "0" * 64, "sha512": "1" * 128})
    pkg = replace(pkg, items=(replace(first, original=forged),) + pkg.items[1:])
    package_collection(pkg, ctx)
    bag = ctx.output / "coll"
    assert f"{'0' * 64}  {forged.bagpath}\n" in (bag / "manifest-sha256.txt").read_text(encoding="utf-8")
    with pytest.raises(bagit.BagValidationError):  # the full check does read, and sees the forgery
        bagit.Bag(str(bag)).validate()


def test_configured_algorithms(tmp_path):
    _, ctx = package(tmp_path, settings=Settings(algorithms=("sha512", "md5")))
    bag = ctx.output / "coll"
    assert [p.name for p in find_manifests(bag)] == [
        "manifest-md5.txt", "manifest-sha512.txt", "tagmanifest-md5.txt", "tagmanifest-sha512.txt"]
    assert bagit_valid(bag)


def test_output_exists(tmp_path):
    pkg, ctx = build(tmp_path / "output")
    existing = ctx.output / "coll"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(PackagingError) as err:
        package_collection(pkg, ctx)
    assert codes(err.value) == {"output.exists"} and "coll" in str(err.value)
    assert tree_bytes(existing) == {"keep.txt": b"mine"}
    assert not (ctx.staging / "bagit.txt").exists(), "refused before any work"


def test_output_exists_for_a_serialized_copy(tmp_path):
    pkg, ctx = build(tmp_path / "output", settings=Settings(serialize="zip"))
    (ctx.output / "coll.zip").write_bytes(b"older")
    with pytest.raises(PackagingError) as err:
        package_collection(pkg, ctx)
    assert codes(err.value) == {"output.exists"}
    assert (ctx.output / "coll.zip").read_bytes() == b"older"


def test_package_missing(tmp_path):
    pkg, ctx = build(tmp_path / "output")
    (ctx.staging / pkg.items[0].masters[0].bagpath).unlink()
    err = refused(pkg, ctx, "package.missing")
    assert err.problems[0].path == pkg.items[0].masters[0].bagpath


def test_package_size(tmp_path):
    pkg, ctx = build(tmp_path / "output")
    with open(ctx.staging / pkg.items[1].original.bagpath, "ab") as f:
        f.write(b"!")
    refused(pkg, ctx, "package.size")


def test_package_unlisted(tmp_path):
    pkg, ctx = build(tmp_path / "output")
    (ctx.staging / "data" / "objects" / "stray.jpg").write_bytes(b"x")
    err = refused(pkg, ctx, "package.unlisted")
    assert err.problems[0].path == "data/objects/stray.jpg"


def test_package_symlink(tmp_path):
    pkg, ctx = build(tmp_path / "output")
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink(tmp_path / "outside.txt", ctx.staging / "data" / "link.txt")
    refused(pkg, ctx, "package.symlink")


def test_package_checksum(tmp_path):
    pkg, ctx = build(tmp_path / "output")
    meta = pkg.metadata_files[0]
    pkg = replace(pkg, metadata_files=(replace(meta, checksums={"sha256": meta.checksums["sha256"]}),)
                  + pkg.metadata_files[1:])
    assert "sha512" in refused(pkg, ctx, "package.checksum").problems[0].reason


def test_package_unexpected(tmp_path):
    pkg, ctx = build(tmp_path / "output")
    (ctx.staging / "notes.txt").write_text("scratch")
    refused(pkg, ctx, "package.unexpected")


def test_package_duplicate(tmp_path):
    """A bag path the package lists twice would be listed twice in the manifests: refused."""
    pkg, ctx = build(tmp_path / "output")
    twice = pkg.items[2].original
    pkg = replace(pkg, metadata_files=pkg.metadata_files + (replace(twice, role="metadata"),))
    err = refused(pkg, ctx, "package.duplicate")
    assert [p.path for p in err.problems] == [twice.bagpath]
    assert str(err).startswith(twice.bagpath) and "\n" not in str(err)


def test_package_empty(tmp_path):
    pkg, ctx = build(tmp_path / "output", originals={})
    pkg = replace(pkg, metadata_files=())
    refused(pkg, ctx, "package.empty")


def test_package_invalid(tmp_path):
    """The read-back after sealing catches a bag that is not what was written."""
    result, ctx = package(tmp_path)
    bag = ctx.output / "coll"
    assert sealed_check(bag, result) == []
    tampered = {
        "data": lambda: (bag / "data" / "extra.txt").write_text("x"),
        "bag-info.txt": lambda: (bag / "bag-info.txt").write_text(
            (bag / "bag-info.txt").read_text().replace("Payload-Oxum: ", "Payload-Oxum: 1")),
        "manifest-sha512.txt": lambda: (bag / "manifest-sha512.txt").write_text(
            (bag / "manifest-sha512.txt").read_text().replace("a.jpg\n", "b.jpg\n")),
        "tagmanifest-sha256.txt": lambda: (bag / "bagit.txt").write_text("BagIt-Version: 0.97\n"),
    }
    for where, damage in tampered.items():
        damage()
        found = sealed_check(bag, result)
        assert {p.code for p in found} == {"package.invalid"} and where in {p.path for p in found}, where


def test_leftovers_of_a_killed_run_are_cleared(tmp_path):
    pkg, ctx = build(tmp_path / "output")
    (ctx.staging / "data" / "objects" / ".a.jpg.part").write_bytes(b"half")   # a killed write
    (ctx.staging / "manifest-md5.txt").write_text("stale\n")                   # a killed seal
    sealed = ctx.output / ".staging" / "coll.sealed" / "coll-1-of-2"           # a killed split
    sealed.mkdir(parents=True)
    package_collection(pkg, ctx)
    bag = ctx.output / "coll"
    assert bagit_valid(bag)
    assert not (bag / "manifest-md5.txt").exists()
    assert not (bag / "data" / "objects" / ".a.jpg.part").exists()
    assert sorted(os.listdir(ctx.output)) == [".staging", "coll"]


def test_a_master_proving_left_by_a_killed_convert_is_cleared_not_package_unlisted(tmp_path, cli):
    """Killed between linking a proven master and removing its temporary name: the rerun packages."""
    folder = make_collection(tmp_path / "ingest", n=1)
    out = tmp_path / "output"
    assert cli("run", folder, "--output", out, "-q", "--until", "convert").returncode == 0
    masters = out / ".staging" / "coll" / "data" / "objects" / "preservation"
    os.link(masters / "img0000.tif", masters / ".img0000.tif.proving")
    (masters / ".img0001.tif.proving").write_bytes(b"II*\0")          # killed while writing
    proc = cli("run", folder, "--output", out, "-q")
    assert proc.returncode == 0 and "package.unlisted" not in proc.stderr, proc.stderr
    assert bagit_valid(out / "coll")
    assert not list((out / "coll").rglob("*.proving"))


def test_path_encoding_cr_lf_percent_only(tmp_path):
    names = {"50%.jpg": b"a", "line\nbreak.jpg": b"b", "cr\rname.jpg": b"c", "%0A literal.jpg": b"d",
             "trailing .jpg ": b"e", "sep\u2028arator.jpg": b"f", "caf\u00e9.jpg": b"g"}
    result, ctx = package(tmp_path, originals=names)
    bag = ctx.output / "coll"
    text = (bag / "manifest-sha256.txt").read_text(encoding="utf-8")
    assert "data/objects/originals/50%25.jpg\n" in text
    assert "data/objects/originals/line%0Abreak.jpg\n" in text
    assert "data/objects/originals/cr%0Dname.jpg\n" in text
    assert "data/objects/originals/%250A literal.jpg\n" in text
    assert "data/objects/originals/trailing .jpg \n" in text
    assert "data/objects/originals/sep\u2028arator.jpg\n" in text
    assert "caf\u00e9" in text and unicodedata.normalize("NFD", "caf\u00e9") not in text
    decoded = {e.path for e in parse_manifest(bag / "manifest-sha256.txt").entries}
    assert decoded == {f.bagpath for f in list(result.payload())}
    assert pipeline_valid(bag)  # bagit-python 1.9 cannot validate these names (its known defects)


# no backslash: discovery refuses it (name.backslash) and so does the METS check in an href
name_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00\\")
names = st.text(name_chars, min_size=1, max_size=12).filter(lambda n: n not in (".", "..") and not is_leftover(n))


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(names, min_size=1, max_size=4))
def test_any_file_names_round_trip_through_the_manifests(tmp_path_factory, file_names):
    tmp = tmp_path_factory.mktemp("names")
    originals = {n: n.encode("utf-8", "surrogatepass") for n in file_names}
    result, ctx = package(tmp, originals=originals)
    bag = ctx.output / "coll"
    for alg in ("sha256", "sha512"):
        entries = parse_manifest(bag / f"manifest-{alg}.txt").entries
        assert {e.path for e in entries} == {f.bagpath for f in list(result.payload())}
        for e in entries:
            assert hash_file(bag / e.path, [alg])[1][alg] == e.digest
    assert pipeline_valid(bag)


def test_source_date_epoch_gives_byte_identical_bags(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    trees = []
    for run in ("one", "two"):
        _, ctx = package(tmp_path / run, settings=Settings(serialize="tar.gz"))
        trees.append(tree_bytes(ctx.output))
    assert trees[0] == trees[1]
    assert {"coll/bag-info.txt", "coll.tar.gz", "coll.tar.gz.sha256"} <= set(trees[0])


def test_split_by_max_bag_size(tmp_path):
    """Two items a bag: each item (1000 + 1004 bytes, their manifest lines, their two files'
    share of the stand-in METS) is about 2.8 KB, every bag's metadata and tag files about 2.5 KB
    (8,000 bytes makes five bags, 11,500 two)."""
    originals = {f"p{i}.jpg": bytes([i]) * 1000 for i in range(5)}
    result, ctx = package(tmp_path, originals=originals, settings=Settings(max_bag_size=9000))
    assert result.published == ("coll-1-of-3", "coll-2-of-3", "coll-3-of-3")
    seen = []
    for number, name in enumerate(result.published, start=1):
        bag = ctx.output / name
        assert bagit_valid(bag)
        info = dict(read_tag_file(bag / "bag-info.txt"))
        assert info["Bag-Group-Identifier"] == "coll-1" and info["Bag-Count"] == f"{number} of 3"
        payload = {e.path for e in parse_manifest(bag / "manifest-sha256.txt").entries}
        assert {f.bagpath for f in result.metadata_files} <= payload, "every bag has all the metadata"
        originals_here = sorted(p for p in payload if p.startswith("data/objects/originals/"))
        seen += originals_here
        assert sum(p.stat().st_size for p in bag.rglob("*") if p.is_file()) <= 9000, "payload and tag files"
        for p in originals_here:
            master = p.replace("/originals/", "/preservation/") + ".tif"
            assert master in payload, "an item's master travels with its original"
    assert sorted(seen) == sorted(f"data/objects/originals/{n}" for n in originals)
    assert not (ctx.output / ".staging" / "coll").exists()
    assert sorted(p.name for p in (ctx.output / ".staging").iterdir()) == [], "no file table left"


def test_split_bags_share_no_file(tmp_path):
    """Each bag of a split package stands alone: no published file shares its inode with another
    (the metadata every bag carries is copied, an item's files are in one bag only)."""
    originals = {f"p{i}.jpg": bytes([i]) * 1000 for i in range(3)}
    result, ctx = package(tmp_path, originals=originals, settings=Settings(max_bag_size=3000))
    assert len(result.published) == 3
    files = [p for name in result.published for p in (ctx.output / name).rglob("*") if p.is_file()]
    assert [str(p) for p in files if p.stat().st_nlink != 1] == []
    assert len({(p.stat().st_dev, p.stat().st_ino) for p in files}) == len(files)


def test_package_oversize(tmp_path):
    originals = {"big.jpg": b"b" * 5000, "small.jpg": b"s" * 10}
    result, ctx = package(tmp_path, originals=originals, settings=Settings(max_bag_size=4000))
    assert result.published == ("coll-1-of-2", "coll-2-of-2")
    assert [p.code for p in result.problems] == ["package.oversize"]
    assert all(bagit_valid(ctx.output / n) for n in result.published)


def test_package_oversize_of_a_one_item_collection(tmp_path):
    result, ctx = package(tmp_path, originals={"big.jpg": b"b" * 5000}, settings=Settings(max_bag_size=2000))
    assert result.published == ("coll",)
    assert [(p.code, p.path) for p in result.problems] == [("package.oversize", "big.jpg")]
    assert bagit_valid(ctx.output / "coll")


def test_no_split_when_everything_fits(tmp_path):
    result, _ = package(tmp_path, settings=Settings(max_bag_size=10**9))
    assert result.published == ("coll",)


def test_bags_conform_to_the_project_profile(tmp_path):
    """schemas/bagit-profile.json, checked by `pipeline verify --profile`, and rule by rule here."""
    profile = json.loads((ROOT_SCHEMAS / "bagit-profile.json").read_text(encoding="utf-8"))
    _, ctx = package(tmp_path)
    bag = ctx.output / "coll"
    assert pipeline_valid(bag, ROOT_SCHEMAS / "bagit-profile.json")
    assert profile["BagIt-Profile-Info"]["BagIt-Profile-Identifier"] == bagwrite.PROFILE_ID
    info = read_tag_file(bag / "bag-info.txt")
    labels = [label for label, _ in info]
    for tag, rule in profile["Bag-Info"].items():
        if rule.get("required"):
            assert tag in labels, tag
        if not rule.get("repeatable", True):
            assert labels.count(tag) <= 1, tag
    assert dict(info)["BagIt-Profile-Identifier"] == profile["BagIt-Profile-Info"]["BagIt-Profile-Identifier"]
    for alg in profile["Manifests-Required"]:
        assert (bag / f"manifest-{alg}.txt").is_file()
    for alg in profile["Tag-Manifests-Required"]:
        assert (bag / f"tagmanifest-{alg}.txt").is_file()
    assert not (bag / "fetch.txt").exists() and profile["Allow-Fetch.txt"] is False
    version = dict(read_tag_file(bag / "bagit.txt"))["BagIt-Version"]
    assert version in profile["Accept-BagIt-Version"]
    for entry in bag.iterdir():
        if entry.name != "data":
            assert any(fnmatch.fnmatch(entry.name, pat) for pat in profile["Tag-Files-Allowed"]), entry.name


# --- end to end: the sample collection through every stage ---------------------------------------

def test_sample_collection_runs_into_a_bag_both_validators_accept(sample_collection, tmp_path, cli):
    out = tmp_path / "output"
    epoch = {"SOURCE_DATE_EPOCH": "1700000000"}
    proc = cli("run", sample_collection, "--output", out, "-q", env=epoch)
    assert proc.returncode == 0, proc.stderr
    bag = out / sample_collection.name
    assert bagit_valid(bag)
    proc = cli("verify", "--profile", ROOT_SCHEMAS / "bagit-profile.json", bag)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for folder in ("data/objects/originals", "data/objects/preservation", "data/metadata"):
        assert any((bag / folder).iterdir()), folder
    assert (bag / "data/metadata/mets.xml").is_file()
    first = tree_bytes(bag)

    proc = cli("run", sample_collection, "--output", out, "-q", env=epoch)  # never overwritten
    assert proc.returncode == 1 and "already exists" in proc.stderr and "Traceback" not in proc.stderr
    assert tree_bytes(bag) == first

    again = tmp_path / "again"  # same input, same SOURCE_DATE_EPOCH: the same bytes
    proc = cli("run", sample_collection, "--output", again, "-q", "--serialize", "zip", env=epoch)
    assert proc.returncode == 0, proc.stderr
    assert tree_bytes(again / sample_collection.name) == first
    archive = again / f"{sample_collection.name}.zip"
    proc = cli("verify", archive)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sidecar = (again / f"{archive.name}.sha256").read_text(encoding="utf-8")
    assert sidecar.split()[0] == hash_file(archive, ["sha256"])[1]["sha256"]


def test_io_write(tmp_path):
    """An operating-system error while sealing is a PackagingError naming the path, not a traceback."""
    name = "n" * 250  # a legal folder name; "<name>.publish" is too long for the file system
    pkg, ctx = build(tmp_path / "output", name=name)
    err = refused(pkg, ctx, "io.write")
    assert err.problems[0].path.endswith(f"{name}.publish") and "too long" in str(err)


def test_sample_collection_split_and_serialized(sample_collection, tmp_path, cli, xsd_dir):
    out = tmp_path / "output"
    proc = cli("run", sample_collection, "--output", out, "-q", "--max-bag-size", "12M", "--serialize", "tar")
    assert proc.returncode == 0, proc.stderr
    bags = sorted(p for p in out.iterdir() if p.is_dir() and p.name != ".staging")
    count = len(bags)
    assert count >= 2 and [b.name for b in bags] == [f"{sample_collection.name}-{k}-of-{count}"
                                                     for k in range(1, count + 1)]
    originals = []
    for bag in bags:
        assert bagit_valid(bag)
        assert check_mets(bag, xsd_dir) == [], "each bag's own METS: consistent and valid"
        assert pipeline_valid(bag)
        assert dict(read_tag_file(bag / "bag-info.txt"))["Bag-Group-Identifier"] == "khojaly-1992"
        assert sum(f.stat().st_size for f in (bag / "data").rglob("*") if f.is_file()) <= 12 * 2**20
        originals += [p.relative_to(bag).as_posix() for p in (bag / "data/objects/originals").rglob("*") if p.is_file()]
        archive = out / f"{bag.name}.tar"
        digest = (out / f"{bag.name}.tar.sha256").read_text(encoding="utf-8").split()[0]
        assert digest == hash_file(archive, ["sha256"])[1]["sha256"]
    received = [p for p in sample_collection.rglob("*") if p.suffix.lower() in (".jpg", ".png", ".tif")]
    assert len(originals) == len(set(originals)) == len(received), "every original in exactly one bag"


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=1000), st.sampled_from(["", "a", "b"])),
                min_size=2, max_size=12),
       st.integers(min_value=0, max_value=300), st.integers(min_value=1, max_value=2500))
def test_split_keeps_every_item_once_in_order_within_the_limit(sizes, fixed, limit):
    """Items of sizes [(bytes, folder)]: a folder ("a", "b": 100 bytes) counts once per bag."""
    from pipeline.stages.package import split

    def cost(index: int) -> tuple[str, int, dict[str, int]]:
        n, folder = sizes[index]
        return f"{index}.jpg", n, {folder: 100} if folder else {}

    def bag(group) -> int:
        return fixed + sum(sizes[i][0] for i in group) + 100 * len({sizes[i][1] for i in group} - {""})

    groups, warnings = split(len(sizes), fixed, limit, cost)
    assert [i for g in groups for i in g] == list(range(len(sizes))) and all(groups)
    oversize = {p.path for p in warnings}
    assert oversize == {f"{i}.jpg" for i in range(len(sizes)) if bag([i]) > limit}
    for group in groups:
        assert bag(group) <= limit or (len(group) == 1 and f"{group[0]}.jpg" in oversize)
        assert group.stop == len(sizes) or bag(range(group.start, group.stop + 1)) > limit, "no bag closed early"


def test_payload_manifest_read_back_line_by_line(tmp_path):
    """The payload manifests are compared line by line with the files (streamed): a missing,
    repeated or reordered line is caught as surely as a wrong one."""
    result, ctx = package(tmp_path)
    bag = ctx.output / "coll"
    manifest = bag / "manifest-sha256.txt"
    good = manifest.read_text(encoding="utf-8")
    lines = good.splitlines(keepends=True)
    assert len(lines) >= 2
    for damaged in (good.rsplit("\n", 2)[0] + "\n", good + lines[-1], "".join(reversed(lines)), good + "\n"):
        manifest.write_text(damaged, encoding="utf-8")
        found = sealed_check(bag, result)
        assert "manifest-sha256.txt" in {p.path for p in found}, damaged
    manifest.write_text(good, encoding="utf-8")


def test_package_stale_original_and_master_of_a_photograph_taken_out_are_removed(tmp_path):
    """A run stopped after convert; one photograph is then taken out of the collection: the
    rerun removes what the first run left of it in staging (it once failed, package.unlisted,
    telling the user to delete staging by hand) and seals a valid bag without it."""
    from conftest import no_traceback, run_cli
    folder = make_collection(tmp_path / "ingest", n=3)
    out = tmp_path / "output"
    first = run_cli("run", folder, "--output", out, "--until", "convert", "--quiet")
    assert first.returncode == 0, first.stderr
    (folder / "img0001.jpg").unlink()
    (folder / "img0001.json").unlink()
    proc = run_cli("run", folder, "--output", out, "--json", "--quiet")
    assert proc.returncode == 0 and no_traceback(proc), proc.stderr
    [report] = json.loads(proc.stdout)["collections"]
    stale = sorted(p["path"] for p in report["problems"] if p["code"] == "package.stale")
    assert stale == ["data/objects/originals/img0001.jpg", "data/objects/preservation/img0001.tif"]
    assert all(p["severity"] == "warning" for p in report["problems"])
    bag = out / "coll"
    assert sorted(p.name for p in (bag / "data" / "objects" / "originals").iterdir()) == ["img0000.jpg", "img0002.jpg"]
    assert bagit_valid(bag) and pipeline_valid(bag)


def test_plan_loads_no_item_it_splits(tmp_path):
    """The split is planned from what the ItemStore keeps of each item in memory (relpath, its
    objects' bag paths and sizes), never by loading (unpickling) an item: it plans the same
    groups, and the same package.oversize, with the store's file closed (no item can be read)
    as from the items themselves."""
    from package_helpers import staged_file, stand_in_mets
    from pipeline.itemstore import ItemStore, store_folder
    from pipeline.mets import METS_PATH
    from pipeline.model import METADATA, ORIGINAL, PRESERVATION, Item, Package
    from pipeline.stage import Context
    from pipeline.stages.package import plan

    ctx = Context.create(Settings(max_bag_size=30720, serialize="tar"), tmp_path / "ingest" / "p",
                         tmp_path / "output", "p", "p-1")
    items = tuple(Item(id=str(i), relpath=f"box/p{i}.jpg", record=None,   # the last one over the limit
                       original=staged_file(ctx, ORIGINAL, f"data/objects/originals/box/p{i}.jpg",
                                            b"j" * (900 * i + 40000 * (i == 11))),
                       masters=(staged_file(ctx, PRESERVATION, f"data/objects/preservation/box/p{i}.tif",
                                            b"t" * 700),)) for i in range(12))
    mets = staged_file(ctx, METADATA, METS_PATH, stand_in_mets([f for item in items for f in item.objects()]))
    store = ItemStore.of(store_folder(ctx.output), items, len(items))
    planned = []
    for held in (items, store):
        pkg = Package(name="p", source=ctx.ingest, collection=None, items=held, metadata_files=(mets,))
        with FileTable(store_folder(ctx.output)) as files:
            files.add(replace(pkg, items=items).payload())
            store._file.close()         # the tuple's plan first; then no item of the store can be loaded
            groups, warnings = plan(pkg, ctx, files)
            planned.append((groups, [p.render() for p in warnings]))
    assert planned[0] == planned[1]
    assert 2 < len(planned[0][0]) < len(items) and planned[0][1], planned[0]
