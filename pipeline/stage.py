"""The stage protocol and the context every stage receives.

A stage is a `Stage(name, per_item, collect)`:
  * `per_item(item, ctx) -> item`: a module-level, picklable function of one item.  The executor
    runs it in a process pool or on a Dask worker; it must not touch other items.
  * `collect(package, ctx) -> package`: collection-level work, run once in the main process after
    the per-item work (pairing checks, METS, manifests...).
Either may be None.  The stage's `name` is used everywhere: logs, `--until`, reports, PREMIS.

Nothing in a stage reads the wall clock, random numbers or the environment: it asks the context.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from .errors import UsageError
from .model import Item, Package

# Namespace for every deterministic identifier the pipeline mints (UUIDv5).
ID_NAMESPACE = uuid.UUID("6f1c3e0a-5b7d-5d2e-9a43-2f0c8b1e7d55")

DEFAULT_PIXEL_LIMIT = 200_000_000
LAST_EPOCH = 253_402_300_799        # 9999-12-31T23:59:59Z: the last moment ISO 8601 dates here can hold


@dataclass(frozen=True)
class Settings:
    """Everything a run may be configured with.  Defaults are the documented defaults."""

    pixel_limit: int = DEFAULT_PIXEL_LIMIT
    compression: str = "none"                 # "none" | "deflate" (TIFF masters)
    algorithms: tuple[str, ...] = ("sha256", "sha512")
    workers: int = 0                          # 0 = all cores
    executor: str = "local"                   # "local" | "dask"
    scheduler: str = ""                       # Dask scheduler address
    schemas_dir: Optional[Path] = None        # official XSDs, for run-time validation
    max_bag_size: int = 0                     # bytes, 0 = one bag
    serialize: str = ""                       # "" | "tar" | "tar.gz" | "zip"
    default_resolution: float = 300.0         # dpi assumed when a source has none
    organization: str = ""                    # overrides the collection record's organization


def source_date_epoch() -> Optional[int]:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return None
    try:
        epoch = int(value)
    except ValueError as exc:
        raise UsageError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, not {value!r}") from exc
    if not 0 <= epoch <= LAST_EPOCH:
        raise UsageError(f"SOURCE_DATE_EPOCH must be between 0 and {LAST_EPOCH} (1970 to 9999), not {value!r}")
    return epoch


@dataclass(frozen=True)
class Context:
    """What a stage may know about the world.  Picklable; one per run."""

    settings: Settings
    ingest: Path                 # the collection folder (read only)
    output: Path                 # the output folder
    staging: Path                # this run's bag under construction (output/.staging/<name>)
    started: datetime            # the run's single timestamp: SOURCE_DATE_EPOCH or the clock at start
    collection_id: str = ""      # the collection's identifier, namespace of every minted id

    @classmethod
    def create(cls, settings: Settings, ingest: Path, output: Path, name: str,
               collection_id: str = "") -> "Context":
        epoch = source_date_epoch()
        started = (datetime.fromtimestamp(epoch, timezone.utc) if epoch is not None
                   else datetime.now(timezone.utc).replace(microsecond=0))
        return cls(settings=settings, ingest=ingest, output=output,
                   staging=output / ".staging" / name, started=started,
                   collection_id=collection_id or name)

    def now(self) -> str:
        """The run's timestamp as ISO 8601 with a Z (one value for the whole run)."""
        return self.started.strftime("%Y-%m-%dT%H:%M:%SZ")

    def make_id(self, *parts: str) -> str:
        """A deterministic UUIDv5 over the collection id and the given parts."""
        return str(uuid.uuid5(ID_NAMESPACE, "\x1f".join((self.collection_id, *parts))))


ItemFn = Callable[[Item, Context], Item]
CollectFn = Callable[[Package, Context], Package]


@dataclass(frozen=True)
class Stage:
    name: str
    per_item: Optional[ItemFn] = None
    collect: Optional[CollectFn] = None
    writes: bool = True          # False only for validation: it must run before anything is written
