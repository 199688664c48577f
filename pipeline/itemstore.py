"""The items of a run, kept on disk between stages instead of in memory.

A 100,000-photograph collection has 100,000 Items of 15-20 KB each (records, image facts, file
checksums, PREMIS events): 2 GB if a run held them all.  An ItemStore keeps each item pickled in
an anonymous temporary file (O_TMPFILE where the OS has it: nothing to clean up, even after a
crash) and only an offset per item in memory (8 bytes).  It is an immutable-looking Sequence:
stages iterate it (one item in memory at a time), index it, take its len(); results are written
into it by index as workers return them, in any order.

Pickle is safe here: the store is written and read by the same process, never shared.
"""
from __future__ import annotations

import pickle
import tempfile
from array import array
from pathlib import Path
from typing import Iterable, Iterator, Sequence, overload

from .errors import ProcessingError
from .model import Item

EMPTY = 2**64 - 1
Outline = tuple[str, tuple[tuple[str, int], ...]]


def outline(item: Item) -> Outline:
    """What the split of a package into bags needs of an item: its relpath and each of its
    objects (original and masters) as (bag path, size)."""
    return item.relpath, tuple((f.bagpath, f.size) for f in item.objects())


class ItemStore(Sequence[Item]):
    def __init__(self, folder: Path, length: int) -> None:
        self._folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._file = tempfile.TemporaryFile(dir=folder, prefix=".items-")
        except OSError as exc:
            raise self._failed(exc) from exc
        self._offsets = array("Q", [EMPTY]) * length
        self._sizes = array("Q", [0]) * length
        self._end = 0
        # Kept in memory, as every stage report and the run's report need them: each item's
        # problems (usually none), the bytes of its objects and of its metadata files, so none
        # needs a pass over the disk.
        self._problems: list[tuple] = [()] * length
        self._payload = array("Q", [0]) * length
        self._metadata = array("Q", [0]) * length
        # And what splitting the package into bags (package.plan) needs of each item, so that it
        # loads none: its relpath, its objects' bag paths and sizes, as one string (NUL, which
        # no path holds, between the fields: about 100 bytes an object).
        self._outlines: list[str] = [""] * length

    @classmethod
    def of(cls, folder: Path, items: Iterable[Item], length: int) -> "ItemStore":
        store = cls(folder, length)
        for i, item in enumerate(items):
            store[i] = item
        return store

    def __setitem__(self, index: int, item: Item) -> None:
        data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._file.seek(self._end)
            self._file.write(data)
        except OSError as exc:      # a full disk, mostly
            raise self._failed(exc) from exc
        self._offsets[index], self._sizes[index] = self._end, len(data)
        self._end += len(data)
        self._problems[index] = item.problems
        self._payload[index] = sum(f.size for f in item.objects())
        self._metadata[index] = sum(f.size for f in item.metadata)
        relpath, objects = outline(item)
        self._outlines[index] = "\0".join([relpath, *(f"{path}\0{size}" for path, size in objects)])

    def outline(self, index: int) -> Outline:
        """`outline(self[index])`, from memory."""
        relpath, *fields = self._outlines[index].split("\0")
        return relpath, tuple((path, int(size)) for path, size in zip(fields[::2], fields[1::2]))

    def item_problems(self) -> Iterator[tuple]:
        """Each item's problems, in order, without loading the items."""
        return iter(self._problems)

    def payload_bytes(self) -> int:
        """The size of every item's original and masters, without loading the items."""
        return sum(self._payload)

    def metadata_bytes(self) -> int:
        """The size of every item's own metadata files, without loading the items."""
        return sum(self._metadata)

    def _failed(self, exc: OSError) -> ProcessingError:
        return ProcessingError(f"{self._folder}: cannot keep the run's items on disk there "
                               f"({exc.strerror or exc}); nothing was published")

    def __len__(self) -> int:
        return len(self._offsets)

    def _load(self, index: int) -> Item:
        offset = self._offsets[index]
        if offset == EMPTY:
            raise IndexError(f"item {index} was never stored")
        self._file.seek(offset)
        return pickle.loads(self._file.read(self._sizes[index]))

    @overload
    def __getitem__(self, index: int) -> Item: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Item, ...]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(self._load(i) for i in range(*index.indices(len(self))))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._load(index)

    def __iter__(self) -> Iterator[Item]:
        for i in range(len(self)):
            yield self._load(i)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or len(other) != len(self):
            return False
        return all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self):
        return (tuple, (tuple(self),))      # pickled (sent elsewhere) as a plain tuple

    def __repr__(self) -> str:
        return f"<ItemStore of {len(self)} items, {self._end} bytes on disk>"


def store_folder(output: Path) -> Path:
    """Where a run keeps its item stores: the output's staging area (same disk as the bag)."""
    return Path(output) / ".staging"
