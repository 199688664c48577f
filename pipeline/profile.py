"""BagIt Profiles (bagit-profiles specification 1.1 to 1.4, JSON): each unmet rule is one Problem.

    load_profile(path) -> dict                  UsageError when the file is not a usable profile
    check_profile(profile, report, listing, manifests, has_fetch) -> [Problem]

Rules checked: Bag-Info (required, values, repeatable), BagIt-Profile-Identifier, Manifests-Required
and -Allowed, Tag-Manifests-Required and -Allowed, Tag-Files-Required and -Allowed,
Payload-Files-Required and -Allowed, Allow-Fetch.txt, Fetch.txt-Required, Data-Empty, Serialization,
Accept-Serialization and Accept-BagIt-Version.  Bag-Info labels are matched without regard to case
(profiles in the wild write `Bagit-Profile-Identifier`).  File patterns use `*` as in fnmatch.
"""
from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from .archive import MIME
from .bag import Listing, Manifest
from .errors import Problem, UsageError, path_error

LISTS = ("Manifests-Required", "Manifests-Allowed", "Tag-Manifests-Required", "Tag-Manifests-Allowed",
         "Tag-Files-Required", "Tag-Files-Allowed", "Payload-Files-Required", "Payload-Files-Allowed",
         "Accept-Serialization", "Accept-BagIt-Version")
BOOLS = ("Allow-Fetch.txt", "Fetch.txt-Required", "Data-Empty")
SERIALIZATION = ("forbidden", "required", "optional")
CORE_TAG_FILES = ("bagit.txt", "bag-info.txt", "package-info.txt", "fetch.txt", "manifest-*.txt",
                  "tagmanifest-*.txt")


def load_profile(path: Path | str) -> dict:
    """Read and sanity-check a profile file; a broken profile is a usage error, not a bag problem."""
    path = Path(path)
    try:
        profile = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise path_error(path, f"cannot read the profile: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise path_error(path, f"not a JSON BagIt profile: {exc}") from exc
    if not isinstance(profile, dict):
        raise path_error(path, "a BagIt profile is a JSON object")
    _check_shape(path, profile)
    return profile


def _check_shape(path: Path, profile: dict) -> None:
    def bad(key: str, what: str) -> UsageError:
        return UsageError(f"{path}: {key} must be {what}")

    for key in LISTS:
        if key in profile and not (isinstance(profile[key], list)
                                   and all(isinstance(v, str) for v in profile[key])):
            raise bad(key, "a list of strings")
    for key in BOOLS:
        if key in profile and not isinstance(profile[key], bool):
            raise bad(key, "true or false")
    if "Serialization" in profile and profile["Serialization"] not in SERIALIZATION:
        raise bad("Serialization", "one of " + ", ".join(SERIALIZATION))
    for key in ("BagIt-Profile-Info", "Bag-Info"):
        if key in profile and not isinstance(profile[key], dict):
            raise bad(key, "an object")
    for label, rule in profile.get("Bag-Info", {}).items():
        if not isinstance(rule, dict):
            raise bad(f"Bag-Info/{label}", "an object")
        if "values" in rule and not isinstance(rule["values"], list):
            raise bad(f"Bag-Info/{label}/values", "a list")


def _matches(path: str, patterns: list[str]) -> bool:
    return any(fnmatchcase(path, p) or (p.endswith("/") and path.startswith(p)) for p in patterns)


class _Rules:
    def __init__(self, profile: dict) -> None:
        self.profile = profile
        self.problems: list[Problem] = []

    def add(self, code: str, path: str, reason: str, rule: str) -> None:
        self.problems.append(Problem(code, path, reason, rule))

    def get(self, key: str, default: Any = None) -> Any:
        return self.profile.get(key, default)


def _bag_info(rules: _Rules, info: list[tuple[str, str]]) -> None:
    values: dict[str, list[str]] = {}
    for label, value in info:
        values.setdefault(label.lower(), []).append(value)
    for label, rule in rules.get("Bag-Info", {}).items():
        found = values.get(label.lower(), [])
        where = f"Bag-Info/{label}"
        if rule.get("required") and not found:
            rules.add("profile.bag_info", "bag-info.txt", f"{label} is required by the profile", where)
        allowed = [str(v) for v in rule.get("values") or []]
        for value in found:
            if allowed and value not in allowed:
                rules.add("profile.bag_info_value", "bag-info.txt",
                          f"{label} {value!r} is not one of {', '.join(map(repr, allowed))}", where)
        if rule.get("repeatable", True) is False and len(found) > 1:
            rules.add("profile.bag_info_repeated", "bag-info.txt",
                      f"{label} appears {len(found)} times; the profile says it is not repeatable", where)
    ident = str(rules.get("BagIt-Profile-Info", {}).get("BagIt-Profile-Identifier", ""))
    declared = values.get("bagit-profile-identifier", [])
    required_here = any(label.lower() == "bagit-profile-identifier" and rule.get("required")
                        for label, rule in rules.get("Bag-Info", {}).items())
    if not declared and not required_here:   # (reported above when the profile lists it)
        rules.add("profile.bag_info", "bag-info.txt",
                  "BagIt-Profile-Identifier is required in a bag that follows a profile",
                  "BagIt-Profile-Identifier")
    elif declared and ident and ident not in declared:
        rules.add("profile.identifier", "bag-info.txt",
                  f"names {', '.join(declared)}, the profile is {ident}", "BagIt-Profile-Identifier")


def _manifests(rules: _Rules, manifests: list[Manifest]) -> None:
    for tag, prefix, code in ((False, "Manifests", "profile.manifest"), (True, "Tag-Manifests", "profile.tag_manifest")):
        have = {m.algorithm for m in manifests if m.tag == tag}
        stem = "tagmanifest" if tag else "manifest"
        for alg in rules.get(f"{prefix}-Required", []):
            if alg.lower() not in have:
                rules.add(f"{code}_required", f"{stem}-{alg}.txt", "required by the profile and missing",
                          f"{prefix}-Required")
        allowed = rules.get(f"{prefix}-Allowed")
        if allowed is not None:
            for alg in sorted(have - {a.lower() for a in allowed}):
                rules.add(f"{code}_allowed", f"{stem}-{alg}.txt",
                          f"{alg} is not in the profile's {prefix}-Allowed ({', '.join(allowed)})",
                          f"{prefix}-Allowed")


def _files(rules: _Rules, listing: Listing) -> None:
    payload = sorted(r for r in listing.files if r.startswith("data/"))
    tags = sorted(r for r in listing.files if not r.startswith("data/"))
    dirs = set(listing.dirs) | {r.rsplit("/", 1)[0] for r in listing.files if "/" in r}
    for kind, files, code in (("Tag", tags, "profile.tag_file"), ("Payload", payload, "profile.payload_file")):
        for required in rules.get(f"{kind}-Files-Required", []):
            if required.endswith("/"):
                present = required.rstrip("/") in dirs
            else:
                present = required in files
            if not present:
                rules.add(f"{code}_required", required, "required by the profile and missing",
                          f"{kind}-Files-Required")
        allowed = rules.get(f"{kind}-Files-Allowed")
        if allowed is None:
            continue
        for rel in files:
            if kind == "Tag" and _matches(rel, list(CORE_TAG_FILES)):
                continue
            if not _matches(rel, allowed):
                rules.add(f"{code}_allowed", rel, f"not allowed by the profile's {kind}-Files-Allowed",
                          f"{kind}-Files-Allowed")


def check_profile(profile: dict, report, listing: Listing, manifests: list[Manifest],
                  has_fetch: bool) -> list[Problem]:
    """Every rule of `profile` that the bag (already verified into `report`) does not meet."""
    rules = _Rules(profile)
    versions = rules.get("Accept-BagIt-Version")
    if versions is not None and report.version not in versions:
        rules.add("profile.bagit_version", "bagit.txt",
                  f"BagIt-Version {report.version or '(none)'} is not one of {', '.join(versions)}",
                  "Accept-BagIt-Version")
    _bag_info(rules, report.info)
    _manifests(rules, manifests)
    _files(rules, listing)
    if has_fetch and rules.get("Allow-Fetch.txt", True) is False:
        rules.add("profile.fetch", "fetch.txt", "the profile does not allow fetch.txt", "Allow-Fetch.txt")
    if not has_fetch and rules.get("Fetch.txt-Required", False):
        rules.add("profile.fetch", "fetch.txt", "the profile requires fetch.txt", "Fetch.txt-Required")
    if rules.get("Data-Empty", False):
        payload = [s for r, s in listing.files.items() if r.startswith("data/")]
        if len(payload) > 1 or any(payload):
            rules.add("profile.data_empty", "data", "the profile requires an empty payload (at most one "
                      "zero-byte file)", "Data-Empty")
    serialization = rules.get("Serialization", "optional")
    kind = report.serialization
    if serialization == "required" and not kind:
        rules.add("profile.serialization", "", "the profile requires a serialized bag (tar, zip...), "
                  "this is a folder", "Serialization")
    elif serialization == "forbidden" and kind:
        rules.add("profile.serialization", "", f"the profile forbids serialized bags; this is a {kind}",
                  "Serialization")
    accepted = rules.get("Accept-Serialization")
    if kind and serialization != "forbidden" and accepted is not None \
            and not set(MIME.get(kind, ())) & set(accepted):
        rules.add("profile.serialization", "", f"{kind} ({', '.join(MIME.get(kind, ()))}) is not in "
                  f"Accept-Serialization ({', '.join(accepted)})", "Accept-Serialization")
    return rules.problems
