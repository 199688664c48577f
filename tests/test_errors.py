"""The error tree and the registry of stable problem codes."""
import re

import pytest

from pipeline import errors
from pipeline.errors import CODES, Problem


def test_every_code_is_dotted_and_has_a_summary():
    assert CODES, "the registry is empty"
    for name, code in CODES.items():
        assert re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_-]+)+", name), name
        assert code.summary.strip(), name
        assert code.severity in (errors.ERROR, errors.WARNING), name


def test_problem_renders_path_field_reason_code():
    p = Problem("io.read", "photos/a.jpg", "permission denied", field="/caption")
    assert p.render() == "photos/a.jpg:/caption: permission denied [io.read]"
    assert p.is_error
    assert p.as_dict()["severity"] == "error"


def test_problem_without_field_or_path():
    assert Problem("io.read", "", "boom").render() == ".: boom [io.read]"


def test_unregistered_code_is_refused():
    with pytest.raises(KeyError):
        Problem("no.such.code", "a", "b")


def test_exit_codes_of_the_tree():
    assert errors.UsageError("x").exit_code == 2
    assert errors.RejectedError("x").exit_code == 1
    assert errors.ConversionError("x").exit_code == 1
    assert errors.FixityError("x").exit_code == 3
    for cls in (errors.UsageError, errors.InputError, errors.RejectedError, errors.UnsupportedInput,
                errors.ProcessingError, errors.ConversionError, errors.PackagingError,
                errors.ClusterError, errors.FixityError):
        assert issubclass(cls, errors.PipelineError)
    assert issubclass(errors.RejectedError, errors.InputError)
    assert not issubclass(errors.ProcessingError, errors.InputError)
