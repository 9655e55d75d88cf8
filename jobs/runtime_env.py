"""The job's Ray runtime environment (jobs/runtime_env.yaml): load it, check it, measure the upload.

Ray reports a bad runtime env late (a typo'd key is ignored with a warning in the job's log, an
oversized working_dir fails mid-upload); these checks run on the submitter's machine first and
say what is wrong and how to fix it.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNTIME_ENV = REPO_ROOT / "jobs" / "runtime_env.yaml"
MAX_UPLOAD_BYTES = 100 * 2**20
"""Largest working_dir upload we send. Ray 2.60's own cap is its gRPC message size (512 MiB), but
the package is re-sent for every changed checkout and unpacked on every node: past 100 MiB it
almost always means weights, data or outputs slipped into the working dir."""
AUTH_MODES = ("disabled", "token")
_PIP_LIKE = ("pip", "uv", "conda")
_REMOTE_URI = re.compile(r"^[a-z][a-z0-9+.-]*://")
log = logging.getLogger(__name__)


class RuntimeEnvError(ValueError):
    """The runtime env would not work on the cluster; the message says what to change."""


@dataclass(frozen=True)
class UploadSize:
    """What Ray will pack from working_dir, measured with Ray's own exclude rules."""

    files: int
    """Files that would be uploaded."""
    raw_bytes: int
    """Their total size before compression."""
    packed_bytes: int | None
    """The zip's size; measured only when raw_bytes passes the limit (zipping costs time)."""
    largest: tuple[tuple[str, int], ...]
    """The biggest top-level entries (path, bytes): what to exclude first."""

    @property
    def bytes(self) -> int:
        return self.packed_bytes if self.packed_bytes is not None else self.raw_bytes


def known_keys() -> set[str]:
    """The runtime env keys Ray 2.60 acts on (private `_` keys left out on purpose)."""
    from ray.runtime_env import RuntimeEnv

    return {k for k in RuntimeEnv.known_fields if not k.startswith("_")}


def load(path: str | Path = DEFAULT_RUNTIME_ENV, env: Mapping[str, str] = (),
         working_dir: str | None = None) -> dict[str, Any]:
    """The runtime env from `path`, with `env` merged into env_vars and working_dir made absolute
    (relative paths are relative to the repository root). Raises RuntimeEnvError."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as e:
        raise RuntimeEnvError(f"cannot read runtime env {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise RuntimeEnvError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(loaded, dict):
        raise RuntimeEnvError(f"{path}: a runtime env is a mapping of keys (working_dir, env_vars, ...)")
    runtime_env = dict(loaded)
    if env:
        runtime_env["env_vars"] = {**(runtime_env.get("env_vars") or {}), **dict(env)}
    if working_dir is not None:
        runtime_env["working_dir"] = working_dir
    wd = runtime_env.get("working_dir")
    if isinstance(wd, str) and not _REMOTE_URI.match(wd):
        runtime_env["working_dir"] = str((REPO_ROOT / wd).resolve())
    return runtime_env


def check(runtime_env: Mapping[str, Any], max_upload_bytes: int = MAX_UPLOAD_BYTES) -> UploadSize | None:
    """Raise RuntimeEnvError naming every problem; return the upload size of a local working_dir."""
    problems = _key_problems(runtime_env) + _env_var_problems(runtime_env.get("env_vars"))
    wd = runtime_env.get("working_dir")
    excludes = runtime_env.get("excludes") or []
    if not isinstance(excludes, list) or not all(isinstance(e, str) for e in excludes):
        problems.append("excludes: must be a list of path patterns (gitignore syntax), e.g. ['.git/', 'out/']")
        excludes = []
    size = None
    if wd is not None and not isinstance(wd, str):
        problems.append(f"working_dir: must be a path or a URI, got {wd!r}")
    elif isinstance(wd, str) and not _REMOTE_URI.match(wd):
        if not os.path.isdir(wd):
            problems.append(f"working_dir: {wd} is not a directory")
        else:
            size = upload_size(wd, excludes, max_upload_bytes)
            if size.bytes > max_upload_bytes:
                biggest = ", ".join(f"{p} ({_mib(b)})" for p, b in size.largest)
                problems.append(
                    f"working_dir: {wd} packs to {_mib(size.bytes)} ({size.files} files), over the "
                    f"{_mib(max_upload_bytes)} upload limit. Largest entries: {biggest}. Add them to "
                    "`excludes` in the runtime env (or a .rayignore); put data and weights on shared storage.")
    if problems:
        raise RuntimeEnvError("runtime env problems:\n  - " + "\n  - ".join(problems))
    return size


def _key_problems(runtime_env: Mapping[str, Any]) -> list[str]:
    known = known_keys()
    problems = []
    for key in runtime_env:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{key}: not a Ray runtime env key{hint}; Ray would ignore it. Known: {', '.join(sorted(known))}")
    installers = [k for k in _PIP_LIKE if runtime_env.get(k)]
    if len(installers) > 1:
        problems.append(f"{' and '.join(installers)}: Ray accepts only one package installer per job")
    if runtime_env.get("image_uri") and installers:
        problems.append(f"image_uri with {installers[0]}: install packages in the image instead")
    return problems


def _env_var_problems(env_vars: Any) -> list[str]:
    if env_vars is None:
        env_vars = {}
    if not isinstance(env_vars, Mapping):
        return [f"env_vars: must be a mapping of NAME: value, got {env_vars!r}"]
    problems = [f"env_vars.{k}: {v!r} must be a string; quote it in YAML (\"{v}\")"
                for k, v in env_vars.items() if not isinstance(v, str)]
    mode = env_vars.get("RAY_AUTH_MODE")
    if mode is None:
        problems.append("env_vars.RAY_AUTH_MODE: required; Ray 2.60 turns token auth on by default, so say "
                        f"which mode the cluster runs in ({' or '.join(AUTH_MODES)})")
    elif mode not in AUTH_MODES:
        problems.append(f"env_vars.RAY_AUTH_MODE: {mode!r} is not one of {', '.join(AUTH_MODES)}")
    return problems


def upload_size(working_dir: str, excludes: list[str], limit: int = MAX_UPLOAD_BYTES) -> UploadSize:
    """Walk working_dir exactly as Ray packs it (its excludes, .gitignore and .rayignore rules);
    zip it for a precise size only when the raw size is over `limit`."""
    from ray._private.runtime_env import packaging

    root = Path(working_dir).absolute()
    per_entry: dict[str, int] = {}
    files = 0

    def visit(path: Path) -> None:
        nonlocal files
        if path.is_file() and not path.is_symlink():
            files += 1
            top = path.relative_to(root).parts[0]
            per_entry[top] = per_entry.get(top, 0) + path.stat().st_size

    include_gitignore = os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1"
    packaging._dir_travel(root, [packaging._get_excludes(root, excludes)], visit, include_gitignore=include_gitignore,
                         logger=log)
    raw = sum(per_entry.values())
    largest = tuple(sorted(per_entry.items(), key=lambda kv: -kv[1])[:5])
    packed = None
    if raw > limit:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "package.zip"
            packaging.create_package(str(root), target, include_gitignore=include_gitignore,
                                     excludes=excludes, logger=log)
            packed = target.stat().st_size
    return UploadSize(files=files, raw_bytes=raw, packed_bytes=packed, largest=largest)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
