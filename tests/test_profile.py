"""pipeline/profile.py: BagIt profiles, each unmet rule named after its code."""
from __future__ import annotations

import json
import tarfile

import pytest

from bagmaker import write_bag
from conftest import ROOT, no_traceback, run_cli
from pipeline.errors import UsageError
from pipeline.profile import load_profile
from pipeline.verify import verify_bag

# The Beyond the Repository (BTR) BagIt profile, v0.1 as published by dpscollaborative/btr_bagit_profile
# (contacts and the BtR-Extensions block left out).
BTR = {
    "BagIt-Profile-Info": {
        "Source-Organization": "Beyond the Repository Bagit Profile Group",
        "External-Description": "Bagit Profile for Consistent Deposit to Distributed Digital Preservation Services",
        "Version": "0.1",
        "BagIt-Profile-Identifier": "http://????/???-v0.1.json",
        "BagIt-Profile-Version": "1.3.0",
    },
    "Bag-Info": {
        "Source-Organization": {"required": True},
        "Bagging-Date": {"required": True},
        "Payload-Oxum": {"required": True},
        "Bagit-Profile-Identifier": {"required": True},
        "Organization-Address": {"required": False, "recommended": True},
        "Contact-Name": {"required": False},
        "Contact-Email": {"required": False, "recommended": True},
        "External-Identifier": {"required": False},
        "Bag-Group-Identifier": {"required": False, "recommended": True},
        "Bag-Count": {"required": False, "recommended": True},
        "Bag-Size": {"required": False},
    },
    "Manifests-Required": [],
    "Manifests-Allowed": ["md5", "sha1", "sha256", "sha512"],
    "Allow-Fetch.txt": False,
    "Serialization": "optional",
    "Accept-Serialization": ["application/zip", "application/tar", "application/x-tar", "application/gzip",
                             "application/x-gzip", "application/x-7z-compressed"],
    "Tag-Manifests-Required": [],
    "Tag-Manifests-Allowed": ["md5", "sha1", "sha256", "sha512"],
    "Tag-Files-Required": [],
    "Tag-Files-Allowed": ["*"],
    "Accept-BagIt-Version": ["0.97", "1.0"],
}
BTR_INFO = [("Source-Organization", "Khojaly Archive"), ("Bagging-Date", "2024-05-01"),
            ("Payload-Oxum", "5.1"), ("BagIt-Profile-Identifier", "http://????/???-v0.1.json")]


def profile_codes(report):
    return sorted(p.code for p in report.problems if p.code.startswith("profile."))


@pytest.fixture
def btr_bag(tmp_path):
    return write_bag(tmp_path / "bag", {"x.txt": b"hello"}, info=BTR_INFO)


def test_btr_bag_conforms(btr_bag):
    report = verify_bag(btr_bag, profile=BTR)
    assert report.valid and report.problems == []


def test_btr_unmet_rules_each_named(tmp_path):
    root = write_bag(tmp_path / "bag", {"x.txt": b"hello"}, version="0.96", algorithms=("sha256", "sha384"),
                     tag_algorithms=("sha384",), info=[("Payload-Oxum", "5.1")],
                     extra_tags={"fetch.txt": b"https://example.org/x 5 data/x.txt\n"})
    report = verify_bag(root, profile=BTR)
    problems = {(p.code, p.field) for p in report.problems if p.code.startswith("profile.")}
    assert problems == {
        ("profile.bagit_version", "Accept-BagIt-Version"),
        ("profile.bag_info", "Bag-Info/Source-Organization"),
        ("profile.bag_info", "Bag-Info/Bagging-Date"),
        ("profile.bag_info", "Bag-Info/Bagit-Profile-Identifier"),
        ("profile.manifest_allowed", "Manifests-Allowed"),
        ("profile.tag_manifest_allowed", "Tag-Manifests-Allowed"),
        ("profile.fetch", "Allow-Fetch.txt"),
    }


def test_profile_identifier_always_required(tmp_path):
    root = write_bag(tmp_path / "bag", {"x.txt": b"hello"}, info=BTR_INFO[:3])
    report = verify_bag(root, profile={"BagIt-Profile-Info": BTR["BagIt-Profile-Info"]})
    assert [(p.code, p.field) for p in report.problems] == [("profile.bag_info", "BagIt-Profile-Identifier")]


@pytest.mark.parametrize("rules, code", [
    ({"Manifests-Required": ["md5"]}, "profile.manifest_required"),
    ({"Tag-Manifests-Required": ["sha512"]}, "profile.tag_manifest_required"),
    ({"Tag-Files-Required": ["custom/notes.txt"]}, "profile.tag_file_required"),
    ({"Tag-Files-Allowed": ["custom/*"]}, "profile.tag_file_allowed"),
    ({"Payload-Files-Required": ["data/LICENSE"]}, "profile.payload_file_required"),
    ({"Payload-Files-Allowed": ["data/*.jpg"]}, "profile.payload_file_allowed"),
    ({"Bag-Info": {"Source-Organization": {"values": ["Other Org"]}}}, "profile.bag_info_value"),
    ({"Bag-Info": {"Contact-Name": {"repeatable": False}}}, "profile.bag_info_repeated"),
    ({"Fetch.txt-Required": True}, "profile.fetch"),
    ({"Data-Empty": True}, "profile.data_empty"),
    ({"Serialization": "required"}, "profile.serialization"),
    ({"BagIt-Profile-Info": {"BagIt-Profile-Identifier": "https://example.org/other.json"}}, "profile.identifier"),
])
def test_profile_rules(tmp_path, rules, code):
    info = BTR_INFO + [("Contact-Name", "A"), ("Contact-Name", "B")]
    root = write_bag(tmp_path / "bag", {"x.txt": b"hello"}, info=info,
                     extra_tags={"other/extra.txt": b"x"})
    assert profile_codes(verify_bag(root, profile=dict(BTR, **rules))) == [code]


def test_profile_serialization_of_archives(tmp_path, btr_bag):
    archive = tmp_path / "bag.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(btr_bag, arcname="bag")
    assert profile_codes(verify_bag(archive, profile=BTR)) == []
    assert profile_codes(verify_bag(archive, profile=dict(BTR, Serialization="forbidden"))) == \
        ["profile.serialization"]
    assert profile_codes(verify_bag(archive, profile=dict(BTR, **{"Accept-Serialization": ["application/zip"]}))) \
        == ["profile.serialization"]


@pytest.mark.parametrize("text", ["{not json", "[]", '{"Manifests-Required": "sha256"}',
                                  '{"Serialization": "sometimes"}', '{"Allow-Fetch.txt": "no"}'])
def test_broken_profile_is_usage_error(tmp_path, btr_bag, text):
    path = tmp_path / "profile.json"
    path.write_text(text)
    with pytest.raises(UsageError):
        load_profile(path)
    proc = run_cli("verify", "--profile", path, btr_bag)
    assert proc.returncode == 2 and no_traceback(proc) and "profile.json" in proc.stderr


def test_cli_profile(tmp_path, btr_bag):
    path = tmp_path / "btr.json"
    path.write_text(json.dumps(BTR))
    assert run_cli("verify", "--profile", path, btr_bag).returncode == 0
    strict = dict(BTR, **{"Manifests-Required": ["md5"]})
    path.write_text(json.dumps(strict))
    proc = run_cli("verify", "--profile", path, btr_bag)
    assert proc.returncode == 1
    assert "manifest-md5.txt:Manifests-Required: required by the profile and missing" in proc.stdout


def test_project_profile_loads_and_a_conforming_bag_passes(tmp_path):
    path = ROOT / "schemas" / "bagit-profile.json"
    if not path.is_file():
        pytest.skip("schemas/bagit-profile.json not committed yet by the package stage")
    profile = load_profile(path)
    ident = profile["BagIt-Profile-Info"]["BagIt-Profile-Identifier"]
    info = [(label, (rule.get("values") or ["x"])[0])
            for label, rule in profile.get("Bag-Info", {}).items() if rule.get("required")]
    info = [(k, v) for k, v in info if k not in ("Payload-Oxum", "Bagging-Date", "BagIt-Profile-Identifier")]
    info += [("Bagging-Date", "2024-05-01"), ("Payload-Oxum", "5.1"), ("BagIt-Profile-Identifier", ident)]
    root = write_bag(tmp_path / "bag", {"x.txt": b"hello"}, info=info,
                     algorithms=profile.get("Manifests-Required") or ("sha256",),
                     tag_algorithms=profile.get("Tag-Manifests-Required") or ("sha256",))
    report = verify_bag(root, profile=profile)
    assert profile_codes(report) == [], [p.render() for p in report.problems]
