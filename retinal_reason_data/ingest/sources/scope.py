"""What a source may read, and what its folder walks ran into.

While a source is read (intake sets the scope), files must lie under its root, its work folder or a folder the
recipe names in the source's options (`locate.option_dir` trusts those): a label table, manifest or article that
names `/etc/passwd` or `../outside.jpg` is refused unless the source sets `allow_outside_root: true`. Links that
sit inside the root are followed wherever they point (a folder of links to a collection stored elsewhere works),
but a name with `..` in it must stay inside once its links are resolved.

Folder walks cannot yield a quarantine record themselves (they return file names), so what they skip for a
reason a person should know (a link that loops, a folder that cannot be listed) is noted here and turned into
quarantine records of the source by intake, once per path and reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from retinal_reason_data.ingest.file_names import display

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Note:
    """Something a folder walk skipped: the path, a reason code and what was wrong."""

    path: str
    reason: str
    detail: str


@dataclass
class Scope:
    """The folders one source may read from, whether it may read elsewhere, and its walks' notes."""

    roots: list[str]
    allow_outside: bool = False
    notes: list[Note] = field(default_factory=list)
    noted: set[tuple[str, str]] = field(default_factory=set)

    def outside(self, path: Path | str) -> bool:
        """True when `path` is not under any of the roots (see the module's docstring) and that is not allowed."""
        return not self.allow_outside and not within(path, self.roots)


_SCOPE: ContextVar[Scope | None] = ContextVar("rrd_source_scope", default=None)


@contextmanager
def source_scope(roots: Iterable[Path], allow_outside: bool = False) -> Iterator[Scope]:
    """Read a source within these roots (see the module's docstring) for the duration of the block."""
    scope = Scope([_absolute(root) for root in roots], allow_outside)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def current_scope() -> Scope | None:
    return _SCOPE.get()


def trust(folder: Path) -> None:
    """A folder named by the recipe (a source option): files under it are inside the source."""
    scope = _SCOPE.get()
    if scope is not None:
        absolute = _absolute(folder)
        if absolute not in scope.roots:
            scope.roots.append(absolute)


def note(path: Path | str, reason: str, detail: str) -> None:
    """Record something a walk skipped for a reason; logged when no source is being read."""
    scope = _SCOPE.get()
    shown = display(path)
    if scope is None:
        log.warning("%s", display(detail))
        return
    if (shown, reason) not in scope.noted:
        scope.noted.add((shown, reason))
        scope.notes.append(Note(shown, reason, display(detail)))


def take_notes() -> list[Note]:
    """The notes recorded since the last call (emptied)."""
    scope = _SCOPE.get()
    if scope is None or not scope.notes:
        return []
    taken, scope.notes = scope.notes, []
    return taken


def within(path: Path | str, roots: Iterable[str]) -> bool:
    """True when `path`, made absolute and normalised, lies under one of `roots`; a path with a `..` part must
    also lie under one once its links are resolved (`root/link/../x` is where the link's target is)."""
    roots = list(roots)
    absolute = _absolute(path)
    if not any(_under(absolute, root) for root in roots):
        return False
    if ".." not in os.fspath(path).split(os.sep):
        return True
    real = os.path.realpath(path)
    return any(_under(real, os.path.realpath(root)) for root in roots)


def _absolute(path: Path | str) -> str:
    return os.path.normpath(os.path.abspath(path))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
