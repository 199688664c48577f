"""Shared pieces of bench_e2e.py and bench_scale.py: collections, timed runs, the machine, RESULTS.md.

Timed commands run under GNU time (`/usr/bin/time -v`), whose "Maximum resident set size" is the
largest single process of the command's tree; a sampler also sums the resident memory of the
whole tree (main process plus workers; proportional set size, so pages that forked workers share
with the main process count once) every 50 ms, which is what the machine has to provide.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
RESULTS = HERE / "RESULTS.md"
EPOCH = "700000000"  # SOURCE_DATE_EPOCH for every pipeline run here


def compiled() -> None:
    """The pipeline's bytecode written, as `pip install` writes it for an installed package.

    An editable checkout run with PYTHONDONTWRITEBYTECODE set (as on these machines) would
    otherwise compile every module of the pipeline from source at each start (about 0.1 s)."""
    import compileall
    compileall.compile_dir(str(ROOT / "pipeline"), quiet=1)


@dataclass
class Timed:
    command: str
    seconds: float
    max_rss_mb: float        # GNU time: the largest single process
    tree_rss_mb: float       # sampled: all processes of the command at once (PSS)
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float = float("nan")   # GNU time: user + system of the command and its children


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss  # shared pages (forked workers) counted once
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def timed(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> Timed:
    """Run `cmd` under /usr/bin/time -v; wall time, peak memory, output."""
    full_env = dict(os.environ, **(env or {}))
    started = time.monotonic()
    proc = subprocess.Popen(["/usr/bin/time", "-v", *cmd], env=full_env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, stop = [0], threading.Event()

    def sample() -> None:
        ps = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], _tree_rss(ps))
            except psutil.NoSuchProcess:
                return
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.monotonic() - started
    stop.set()
    sampler.join()
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    rss = int(m.group(1)) / 1024 if m else float("nan")
    cpu = sum(float(c.group(1)) for c in re.finditer(r"(?:User|System) time \(seconds\): ([\d.]+)", err)) \
        if "User time" in err else float("nan")
    err = err.split("\tCommand being timed:", 1)[0]  # the command's own messages, not GNU time's
    # The sampled tree includes /usr/bin/time itself (about 2 MB).
    return Timed(" ".join(shlex.quote(c) for c in cmd), seconds, rss, peak[0] / 2**20,
                 proc.returncode, out, err, cpu)


def pipeline_run(ingest: Path, output: Path, *extra: str) -> tuple[Timed, dict]:
    """`pipeline run --json --quiet` as a subprocess; the timing and the parsed JSON report."""
    compiled()
    cmd = [sys.executable, "-m", "pipeline", "run", "--ingest", str(ingest), "--output", str(output),
           "--json", "--quiet", *extra]
    t = timed(cmd, env={"SOURCE_DATE_EPOCH": EPOCH}, cwd=ROOT)
    try:
        report = json.loads(t.stdout)
    except ValueError:
        report = {}
    if t.returncode != 0:
        tail = "\n".join(t.stderr.strip().splitlines()[-25:])
        print(f"pipeline run exited {t.returncode}:\n{tail}", file=sys.stderr)
    return t, report


def write_collection_record(folder: Path, name: str, description: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "collection.json").write_text(json.dumps({
        "identifier": name, "title": f"Benchmark collection {name}", "creator": "Benchmark",
        "description": description, "rights": "CC0 1.0", "organization": {"name": "Benchmark Archive"},
    }, indent=1), encoding="utf-8")


def write_item_record(path: Path, identifier: str, i: int) -> None:
    path.write_text(json.dumps({
        "identifier": identifier, "title": f"Photograph {i}", "date": f"{1990 + i % 10}-0{1 + i % 9}",
        "place": ["Azerbaijan", "Karabakh", ["Aghdam", "Shusha", "Khojaly"][i % 3]],
        "caption": f"Generated benchmark photograph number {i}.", "creator": "Benchmark",
        "rights": "CC0 1.0", "language": "en",
    }, indent=1), encoding="utf-8")


TRASH = WORK / ".trash"


def discard(path: Path) -> None:
    """Put a previous run's output aside (a rename) instead of deleting it before a timed run.

    The file system here is mounted with `discard`: deleting thousands of files or gigabytes
    makes the disk slow for the next tens of seconds (TRIM), which a timed run would pay for.
    `empty_trash()` deletes it all once the timed runs are over."""
    if path.exists():
        TRASH.mkdir(parents=True, exist_ok=True)
        path.rename(TRASH / f"{path.name}-{time.monotonic_ns()}")


def empty_trash() -> None:
    import shutil
    shutil.rmtree(TRASH, ignore_errors=True)


def settle() -> None:
    """Write back whatever earlier runs left dirty (and their deleted outputs), so that a timed
    run does not pay for the run before it: each starts from a clean page cache state."""
    os.sync()


def warm(folder: Path) -> None:
    """Read every file below `folder` once, so each tool starts from the page cache."""
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                while f.read(1 << 22):
                    pass


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    im = subprocess.run(["/usr/bin/convert", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; {im.strip()}")


def update_results(marker: str, text: str) -> None:
    """Replace this benchmark's own section of RESULTS.md (between its markers), or append it."""
    begin, end = f"<!-- {marker}: begin -->", f"<!-- {marker}: end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        current = current.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(current, encoding="utf-8")


def shown(command: str) -> str:
    """A command line as RESULTS.md shows it: paths relative to the project, `python`."""
    return command.replace(sys.executable, "python").replace(str(ROOT) + "/", "")


def write_section(marker: str, title: str, command: str, lines: list[str], notes: list[str] = ()) -> None:
    """This benchmark's section of RESULTS.md: title, machine, command, output, notes."""
    update_results(marker, "\n".join([f"## {title}", "", f"Machine: {machine()}", "", f"Command: {command}",
                                      "", "```", *lines, "```", *([""] + list(notes) if notes else [])]))
