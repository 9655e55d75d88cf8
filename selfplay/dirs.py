"""Whole directories (model checkpoints, copied rounds) written safely: built under
`<name>.partial`, then swapped in complete, so a kill at any moment leaves the old directory or the
new one, never half of one. The swap moves the old one aside to `<name>.old` first (a directory
cannot be renamed onto a non-empty one); a kill between the two renames leaves it there, and the
next `partial_dir` for that target puts it back. A leftover `.partial` is cleared on the next try."""

from __future__ import annotations

import shutil
from pathlib import Path


def _aside(target: Path) -> Path:
    return target.with_name(target.name + ".old")


def partial_dir(target: Path) -> Path:
    """An empty-to-be path next to `target` to build it in (a stale one is removed; an old
    directory a killed swap left aside is put back first)."""
    old = _aside(target)
    if old.exists() and not target.exists():
        old.rename(target)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    return partial


def swap_in(partial: Path, target: Path) -> None:
    """Replace `target` with the finished `partial`: at every moment one complete directory exists,
    at `target` or (between the two renames) at its `.old` name."""
    old = _aside(target)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    partial.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def copy_dir(source: Path, target: Path, ignore=None) -> Path:
    """Copy `source` whole into `target` (`ignore` as in shutil.copytree)."""
    partial = copy_partial(source, target, ignore)
    swap_in(partial, target)
    return target


def copy_partial(source: Path, target: Path, ignore=None) -> Path:
    """A copy of `source` under `target`'s partial name, not yet swapped in."""
    partial = partial_dir(target)
    shutil.copytree(source, partial, ignore=ignore)
    return partial
