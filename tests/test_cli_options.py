"""Options shared by several subcommands (pipeline/cli/options.py)."""
from __future__ import annotations

import pytest

from pipeline.cli.options import parse_size
from pipeline.errors import UsageError


@pytest.mark.parametrize("text", ["0", "0.5", "0K", "0.0001K", "-1", "-1G"])
def test_sizes_under_one_byte_are_usage_errors_naming_the_option(text):
    with pytest.raises(UsageError) as err:
        parse_size(text, "--max-bag-size")
    assert str(err.value).startswith("--max-bag-size: ") and repr(text) in str(err.value)
    assert err.value.exit_code == 2


def test_sizes_of_a_byte_or_more_are_bytes():
    assert [parse_size(t, "--max-bag-size") for t in ("1", "1.5", "0.5K", "12M", "2GiB")] == [
        1, 1, 512, 12 * 2**20, 2 * 2**30]


def test_run_with_max_bag_size_0_is_a_usage_error_before_any_work(sample_collection, tmp_path, cli):
    """`--max-bag-size 0` meant "no limit" without a word; now exit 2, and nothing written.
    The option's type says so, as click says every bad value: naming the option and the value."""
    out = tmp_path / "output"
    for size in ("0", "0.5", "lots"):
        proc = cli("run", sample_collection, "--output", out, "-q", "--max-bag-size", size)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert f"Error: Invalid value for '--max-bag-size': {size!r}" in proc.stderr \
            or f"Error: Invalid value for '--max-bag-size': not a size: {size!r}" in proc.stderr, proc.stderr
        assert proc.stderr.startswith("Usage: pipeline run ")
        assert not out.exists()
