"""What a sandboxed program can see: the interpreter, the packages it may import, and nothing else.

Everything here is derived at start-up from the interpreter itself, never from a hand-kept list
of paths: `python -I -S` names the real path of its binary and its standard-library dirs, `site`
then finds the allowed packages (a venv's site-packages included), and `ldd` names every shared
object that the binary, the standard library's extension modules and the packages' extension
modules load, the dynamic loader included.

The binary and those libraries, with every symlink on the way to them (merged /usr:
`/lib -> usr/lib`), are laid out once in a private *image* directory (hard links where the
file system allows, else copies; shared by the user's processes) that becomes the sandbox's
read-only root. Binding
each library instead would cost one mount per file: bwrap spends about 0.4 ms per mount, and the
45 libraries of a stock CPython would double the cost of a run. The standard library and the
packages are bound read-only at their real paths on top, so rpaths and `$ORIGIN` work unchanged;
any site-packages inside the standard library is covered by an empty tmpfs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Run with `python -I -S`: sys.path is then the interpreter's own (standard library) dirs only.
_PROBE = r"""
import importlib.machinery, importlib.util, json, os, site, sys
stdlib = [os.path.realpath(p) for p in sys.path if os.path.isdir(p)]
suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
extensions = [os.path.join(d, f) for d in stdlib for f in sorted(os.listdir(d)) if f.endswith(suffixes)]
covered = [os.path.realpath(p) for p in site.getsitepackages([sys.base_prefix])]
site.main()  # now the site-packages too (a venv's included), to find the allowed packages
packages = {}
for name in json.loads(sys.argv[1]):
    spec = importlib.util.find_spec(name)
    if spec is not None and (spec.submodule_search_locations or spec.has_location):
        packages[name] = list(spec.submodule_search_locations or [spec.origin])
print(json.dumps({"executable": os.path.realpath(sys.executable), "stdlib": stdlib,
                  "extensions": extensions, "covered": covered, "packages": packages}))
"""


@dataclass(frozen=True)
class InterpreterView:
    """The paths a sandboxed run of one interpreter needs (all real paths)."""

    executable: str
    """The interpreter binary, run at its real path (a venv's `python` is a symlink to it)."""
    stdlib: tuple[str, ...]
    """Standard-library dirs, bound read-only."""
    extensions: tuple[str, ...]
    """The standard library's extension modules (their libraries go into the image)."""
    covered: tuple[str, ...]
    """site-packages dirs inside `stdlib`, hidden behind an empty tmpfs."""
    imports: tuple[str, ...]
    """Top-level names of the allowed packages."""
    packages: tuple[str, ...]
    """Dirs (or module files) of the allowed packages, bound read-only."""
    sys_path: tuple[str, ...]
    """Dirs the sandboxed program appends to sys.path so the allowed packages import."""


@functools.lru_cache(maxsize=None)
def interpreter_view(python: str, packages: tuple[str, ...] = ()) -> InterpreterView:
    """Ask `python` where its parts are. ValueError names a package it cannot import."""
    bad = [name for name in packages if not name.isidentifier()]
    if bad:
        raise ValueError(f"allowed packages are top-level module names, not {bad}")
    done = subprocess.run([python, "-I", "-S", "-c", _PROBE, json.dumps(list(packages))],
                          capture_output=True, text=True, timeout=60, cwd="/")
    if done.returncode != 0:
        raise RuntimeError(f"could not ask {python} for its paths: {done.stderr[-500:]}")
    found = json.loads(done.stdout)
    missing = [name for name in packages if name not in found["packages"]]
    if missing:
        raise ValueError(f"allowed packages not importable by {python}: {missing}")
    paths = [os.path.realpath(p) for name in packages for p in found["packages"][name]]
    stdlib = _outermost(found["stdlib"])
    return InterpreterView(
        executable=found["executable"], stdlib=stdlib, extensions=tuple(found["extensions"]),
        covered=tuple(p for p in found["covered"] if os.path.isdir(p) and _inside(p, stdlib)),
        imports=packages, packages=tuple(dict.fromkeys(paths)),
        sys_path=tuple(dict.fromkeys(os.path.dirname(p) for p in paths)))


def _outermost(paths) -> tuple[str, ...]:
    ordered = sorted(set(paths))
    return tuple(p for p in ordered if not _inside(p, [q for q in ordered if q != p]))


def _inside(path: str, dirs) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


@functools.lru_cache(maxsize=None)
def bwrap_mounts(view: InterpreterView) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """bwrap arguments for the view: (those before the private /tmp, those after it).
    Worked out once per process and view."""
    image = _image(view, shared_objects(view))
    head = ["--ro-bind", str(image), "/", "--proc", "/proc"]
    for name in ("null", "zero", "urandom"):
        head += ["--dev-bind", f"/dev/{name}", f"/dev/{name}"]
    # The private /tmp covers the image's /tmp: bind back what the interpreter keeps there.
    tail = [a for entry in sorted(os.listdir(image / "tmp"))
            for a in ("--ro-bind", str(image / "tmp" / entry), f"/tmp/{entry}")]
    for path in view.stdlib:
        tail += ["--ro-bind", path, path]
    for path in view.covered:
        tail += ["--tmpfs", path]
    for path in view.packages:
        tail += ["--ro-bind", path, path]
    return tuple(head), tuple(tail)


def shared_objects(view: InterpreterView) -> list[str]:
    """Every shared object the binary and the extension modules load, as the loader names
    them (`ldd`, which runs the real loader in list mode), the loader itself included."""
    if shutil.which("ldd") is None:
        raise RuntimeError("ldd not found: cannot tell which libraries the interpreter needs")
    loaded = [view.executable, *view.extensions]
    for path in view.packages:
        if os.path.isdir(path):
            loaded += sorted(str(p) for p in Path(path).rglob("*") if ".so" in p.name and p.is_file())
        elif ".so" in os.path.basename(path):
            loaded.append(path)
    done = subprocess.run(["ldd", *loaded], capture_output=True, text=True, timeout=120)
    found: dict[str, None] = {}
    for line in done.stdout.splitlines():
        if not line.startswith("\t"):
            continue  # a "file:" header, or "not a dynamic executable"
        target = line.split("=>", 1)[-1].strip().split(" (", 1)[0]
        if target.startswith("/"):
            found[target] = None
    if not found:
        raise RuntimeError(f"ldd named no library for {view.executable}: {done.stderr[-300:]}")
    return list(found)


def _image(view: InterpreterView, libraries: list[str]) -> Path:
    """The image's root dir, shared by this user's processes: found by a key over what it is
    made of (so a changed library makes a new one), else built in a temporary dir that is
    renamed into place (so a reader never sees half of one, and a killed builder leaks only
    its temporary dir). Lives in a dir only we may enter, under the temporary dir."""
    stats = []
    for path in sorted({resolve(p)[1] for p in [view.executable, *libraries]}):
        st = os.stat(path)
        stats.append((path, st.st_ino, st.st_size, st.st_mtime_ns))
    key = hashlib.sha256(repr((view, libraries, stats)).encode()).hexdigest()[:20]
    images = Path(tempfile.gettempdir()) / f"sandbox-images-{os.geteuid()}"
    images.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(images)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise RuntimeError(f"{images} is not a private dir of ours; refusing to use it")
    image = images / key
    if not image.is_dir():
        partial = Path(tempfile.mkdtemp(prefix=f"{key}.partial-", dir=images))
        _lay_out(partial / "root", view, libraries)
        try:
            os.rename(partial, image)
        except OSError:  # another process put the same image in place first
            shutil.rmtree(partial, ignore_errors=True)
    return image / "root"


def _lay_out(root: Path, view: InterpreterView, libraries: list[str]) -> None:
    root.mkdir()
    root.chmod(0o755)
    for name in ("proc", "dev", "tmp"):
        _mkdirs(root, "/" + name)
    for name in ("null", "zero", "urandom"):
        (root / "dev" / name).touch(mode=0o644)
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", root / "dev" / name)
    os.symlink("/proc/self/fd", root / "dev" / "fd")
    for path in [view.executable, *libraries]:
        links, real = resolve(path)
        for link, target in links:
            _mkdirs(root, os.path.dirname(link))
            if not os.path.lexists(root / link.lstrip("/")):
                os.symlink(target, root / link.lstrip("/"))
        _mkdirs(root, os.path.dirname(real))
        _place(real, root / real.lstrip("/"))
    for path in [*view.stdlib, *view.packages]:  # mount points
        if os.path.isdir(path):
            _mkdirs(root, path)
        else:
            _mkdirs(root, os.path.dirname(path))
            (root / path.lstrip("/")).touch(mode=0o644)


def resolve(path: str) -> tuple[list[tuple[str, str]], str]:
    """The symlinks met on the way to `path` as (link, target), and the real path it ends at."""
    links, todo, here = [], [p for p in path.split("/") if p], "/"
    for _ in range(1000):
        if not todo:
            return links, here
        step = os.path.join(here, todo.pop(0))
        if os.path.islink(step):
            target = os.readlink(step)
            links.append((os.path.normpath(step), target))
            todo = [p for p in target.split("/") if p] + todo
            here = "/" if target.startswith("/") else here
        else:
            here = os.path.normpath(step)
    raise OSError(f"too many symlinks on the way to {path}")


def _mkdirs(root: Path, path: str) -> None:
    """Create `path` inside the image, each new dir 0755 whatever the umask (the sandboxed
    uid must be able to walk down to the interpreter)."""
    here = root
    for part in [p for p in path.split("/") if p]:
        here = here / part
        if not os.path.lexists(here):
            here.mkdir()
            here.chmod(0o755)


def _place(real: str, dest: Path) -> None:
    if os.path.lexists(dest):
        return
    try:
        os.link(real, dest)  # same file system and allowed (root, or the file's owner)
    except OSError:
        shutil.copy2(real, dest)
