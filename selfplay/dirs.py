"""Whole directories (model checkpoints, copied rounds) written safely: built under
`<name>.partial`, then swapped in complete, so a kill at any moment leaves the old directory or the
new one, never half of one. A leftover `.partial` from a killed run is cleared on the next try."""

from __future__ import annotations

import shutil
from pathlib import Path


def partial_dir(target: Path) -> Path:
    """An empty-to-be path next to `target` to build it in (a stale one is removed)."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    return partial


def swap_in(partial: Path, target: Path) -> None:
    """Replace `target` with the finished `partial`."""
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


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
