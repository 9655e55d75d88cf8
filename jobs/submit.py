"""`python -m jobs.submit`: run selfplay entry points as Ray jobs, one run name per experiment.

    python -m jobs.submit [--address URL] [--run NAME] [--no-wait] [--env K=V] ENTRY [OVERRIDES...]
    python -m jobs.submit status RUN        every attempt of RUN and its state
    python -m jobs.submit logs RUN [--follow]
    python -m jobs.submit stop RUN

ENTRY is a module run as `python -m ENTRY` on the cluster (selfplay.generate, ...); OVERRIDES are
Hydra overrides passed through untouched (quoted for the shell, never rewritten). Helper options
go before ENTRY. Overrides are composed against the checkout's conf/ and mapped onto the verb's
typed config (every selfplay verb has one) before anything is sent, so a typo fails here, not
after the upload; selfplay.generate also gets `cluster=ray_job` (connect to the cluster, not a
local Ray) unless a cluster is chosen, and so does selfplay.flywheel.

Run names and resuming: Ray keeps a finished job's submission id forever and refuses it again, so
attempt 1 of run `exp1` is submitted as `exp1` and later attempts as `exp1-attempt-2`, ...; each is
tagged with the run name in the job metadata. The output dir is keyed by the run, not the attempt
(`output.out_dir=.../exp1`), so a resubmission after a `stop`, a crash or a lost node reopens the
round's manifest and skips the problems already committed. The run name defaults to the last part
of `output.out_dir` (the flywheel's `out_dir`) for that reason.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from jobs import runtime_env as renv

RUN_KEY = "selfplay_run"
"""Job metadata key holding the run name; attempts of a run are found by it."""
ATTEMPT_KEY = "selfplay_attempt"
OVERRIDES_KEY = "selfplay_overrides"
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
VERBS = ("submit", "status", "logs", "stop")
EXIT_OK, EXIT_JOB_FAILED, EXIT_BAD_INPUT, EXIT_NO_CLUSTER = 0, 1, 2, 3


class SubmitError(ValueError):
    """Bad input: the message says what to change. Nothing was submitted."""


# ---- what gets submitted ----------------------------------------------------------------------

def submission_id(run: str, attempt: int) -> str:
    return run if attempt == 1 else f"{run}-attempt-{attempt}"


def run_name(run: str | None, overrides: Sequence[str]) -> str:
    """`--run`, else the last part of an `output.out_dir=` override (`out_dir=` for the flywheel)."""
    if run is None:
        out_dirs = [o.split("=", 1)[1] for o in overrides if o.lstrip("+").startswith(("output.out_dir=", "out_dir="))]
        if not out_dirs:
            raise SubmitError("name the run: --run NAME, or pass output.out_dir=<storage>/<name> (out_dir= for "
                              "the flywheel; the run name is its last part, and a resubmission resumes from that "
                              "directory)")
        run = out_dirs[-1].rstrip("/").rsplit("/", 1)[-1]
    if not RUN_NAME.match(run):
        raise SubmitError(f"run name {run!r}: use 1-63 letters, digits, '_', '.', '-', starting with a letter or digit")
    return run


def checked_overrides(entry: str, overrides: Sequence[str], working_dir: str) -> list[str]:
    """The overrides to send: the user's, untouched, after `cluster=ray_job` where the entry point
    has a cluster group and none was chosen. Composes them against working_dir/conf first."""
    if not ENTRY.match(entry):
        raise SubmitError(f"entry point {entry!r}: give a module name such as selfplay.generate")
    conf = Path(working_dir) / "conf"
    if Path(working_dir).resolve() == renv.REPO_ROOT and importlib.util.find_spec(entry.split(".")[0]) is not None:
        if importlib.util.find_spec(entry) is None:
            raise SubmitError(f"entry point {entry}: no such module in {working_dir}")
    name = entry.rsplit(".", 1)[-1]
    if not (conf / f"{name}.yaml").is_file():
        return list(overrides)  # not a Hydra entry of this project: pass through unchecked
    chosen = [o for o in overrides if re.match(r"^\+{0,2}cluster=", o)]
    extra = ["cluster=ray_job"] if not chosen and (conf / "cluster" / "ray_job.yaml").is_file() else []
    cfg = compose(conf, name, extra + list(overrides))
    if extra and "cluster" not in cfg:
        extra = []
    from selfplay.cli import CONFIGS, typed_config

    if entry == f"selfplay.{name}" and name in CONFIGS:
        # Every verb's config is typed: map it here, as the entry point will, so a wrong key or
        # type fails before the upload.
        try:
            typed_config(name, cfg)
        except Exception as e:  # ConfigError, MissingMandatoryValue: both name the key
            raise SubmitError(f"{entry} config: {e}") from None
    return extra + list(overrides)


def compose(conf: Path, name: str, overrides: list[str]):
    """The Hydra config `name` from `conf` with `overrides`, as the entry point will see it."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from selfplay.cli import compose as cli_compose

    try:
        return cli_compose(name, overrides, str(conf.resolve()))
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        raise SubmitError(f"overrides do not compose with conf/{name}.yaml: {e}") from None


def entrypoint(entry: str, overrides: Sequence[str]) -> str:
    """The shell command the job runs; each override is quoted so it arrives as one argument."""
    return shlex.join(["python", "-m", entry, *overrides])


# ---- talking to the cluster -------------------------------------------------------------------

def client(address: str | None):
    """A Job Submission client for the dashboard at `address` (None: $RAY_ADDRESS or localhost)."""
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address)


def attempts(jobs_client, run: str) -> list[Any]:
    """Every job of `run` on the cluster, oldest attempt first."""
    found = []
    for job in jobs_client.list_jobs():
        meta = job.metadata or {}
        if meta.get(RUN_KEY) == run or (job.submission_id == run and RUN_KEY not in meta):
            found.append((int(meta.get(ATTEMPT_KEY, 1)), job))
    return [job for _, job in sorted(found, key=lambda t: t[0])]


def submit(jobs_client, run: str, entry: str, overrides: Sequence[str], runtime_env: dict[str, Any],
           entrypoint_num_cpus: float = 1, out=sys.stdout) -> str:
    """Submit the next attempt of `run`; refuses while an earlier attempt is still running."""
    previous = attempts(jobs_client, run)
    live = [j for j in previous if not j.status.is_terminal()]
    if live:
        raise SubmitError(f"run {run} is still {live[-1].status} as {live[-1].submission_id}: "
                          f"wait for it or `python -m jobs.submit stop {run}` first")
    attempt = 1 + max((int((j.metadata or {}).get(ATTEMPT_KEY, 1)) for j in previous), default=0)
    if previous:
        last = previous[-1]
        print(f"run {run}: attempt {attempt} resumes after {last.submission_id} ({last.status})", file=out)
        before = (last.metadata or {}).get(OVERRIDES_KEY)
        if before is not None and json.loads(before) != list(overrides):
            print(f"warning: overrides differ from {last.submission_id}'s {before}; a round refuses to resume "
                  "under a different config (output, cluster and progress keys may change)", file=out)
    sid = jobs_client.submit_job(
        entrypoint=entrypoint(entry, overrides), submission_id=submission_id(run, attempt),
        runtime_env=runtime_env, entrypoint_num_cpus=entrypoint_num_cpus,
        metadata={RUN_KEY: run, ATTEMPT_KEY: str(attempt), OVERRIDES_KEY: json.dumps(list(overrides))})
    print(f"submitted {sid}: {entrypoint(entry, overrides)}", file=out)
    return sid


def wait(jobs_client, sid: str, follow: bool = True, poll_s: float = 1.0, out=sys.stdout) -> str:
    """Block until job `sid` ends (printing its log when `follow`); returns its final status."""
    if follow:
        asyncio.run(_print_log(jobs_client, sid, out))
    while not (status := jobs_client.get_job_status(sid)).is_terminal():
        time.sleep(poll_s)
    return str(status)


async def _print_log(jobs_client, sid: str, out) -> None:
    async for chunk in jobs_client.tail_job_logs(sid):
        out.write(chunk)
        out.flush()


def latest(jobs_client, run: str, attempt: int | None = None):
    found = attempts(jobs_client, run)
    if attempt is not None:
        found = [j for j in found if int((j.metadata or {}).get(ATTEMPT_KEY, 1)) == attempt]
    if not found:
        raise SubmitError(f"no job of run {run}" + (f" attempt {attempt}" if attempt else "") + " on this cluster")
    return found[-1]


# ---- the command line -------------------------------------------------------------------------

def _parser(verb: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m jobs.submit{'' if verb == 'submit' else ' ' + verb}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--address", default=None,
                   help="Ray dashboard URL, e.g. http://head:8265 (default: $RAY_ADDRESS or http://127.0.0.1:8265)")
    if verb == "submit":
        p.add_argument("--run", default=None, help="run name (default: last part of output.out_dir)")
        p.add_argument("--no-wait", action="store_true", help="return once submitted")
        p.add_argument("--runtime-env", default=str(renv.DEFAULT_RUNTIME_ENV), help="runtime env YAML")
        p.add_argument("--working-dir", default=None, help="override the runtime env's working_dir")
        p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra env_vars (repeatable)")
        p.add_argument("--entrypoint-num-cpus", type=float, default=1.0,
                       help="CPUs reserved for the driver, so it may run off a head that has num-cpus 0")
        p.add_argument("--max-upload-mib", type=float, default=renv.MAX_UPLOAD_BYTES / 2**20)
        p.add_argument("--dry-run", action="store_true", help="check and print what would be sent; submit nothing")
        p.add_argument("entry", help="module run as `python -m ENTRY`, e.g. selfplay.generate")
        p.add_argument("overrides", nargs=argparse.REMAINDER, help="Hydra overrides, passed through")
        return p
    p.add_argument("run", help="run name")
    if verb == "logs":
        p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
        p.add_argument("--attempt", type=int, default=None, help="attempt number (default: the latest)")
    if verb == "stop":
        p.add_argument("--no-wait", action="store_true", help="return without waiting for the job to stop")
    return p


def _env_pairs(pairs: list[str]) -> dict[str, str]:
    bad = [p for p in pairs if "=" not in p or not p.split("=", 1)[0]]
    if bad:
        raise SubmitError(f"--env {bad[0]!r}: give NAME=VALUE")
    return dict(p.split("=", 1) for p in pairs)


def cmd_submit(a: argparse.Namespace) -> int:
    overrides = a.overrides[1:] if a.overrides[:1] == ["--"] else a.overrides
    env = renv.load(a.runtime_env, _env_pairs(a.env), a.working_dir)
    size = renv.check(env, int(a.max_upload_mib * 2**20))
    run = run_name(a.run, overrides)
    final = checked_overrides(a.entry, overrides, env.get("working_dir") or ".")
    if size is not None:
        print(f"working_dir {env['working_dir']}: {size.files} files, {size.bytes / 2**20:.1f} MiB")
    if a.dry_run:
        print(f"run {run}: {entrypoint(a.entry, final)}")
        print(json.dumps(env, indent=2))
        return EXIT_OK
    c = client(a.address)
    sid = submit(c, run, a.entry, final, env, a.entrypoint_num_cpus)
    if a.no_wait:
        print(f"follow it: python -m jobs.submit logs {run} --follow")
        return EXIT_OK
    try:
        status = wait(c, sid)
    except KeyboardInterrupt:
        print(f"\nstopped watching; {sid} keeps running. Stop it: python -m jobs.submit stop {run}")
        return EXIT_JOB_FAILED
    print(f"{sid}: {status}")
    return EXIT_OK if status == "SUCCEEDED" else EXIT_JOB_FAILED


def cmd_status(a: argparse.Namespace) -> int:
    found = attempts(client(a.address), a.run)
    if not found:
        print(f"no job of run {a.run} on this cluster")
        return EXIT_JOB_FAILED
    print("| submission id | status | started | ended | message |\n|---|---|---|---|---|")
    for j in found:
        msg = (j.message or "").replace("\n", " ")[:120]
        print(f"| {j.submission_id} | {j.status} | {_when(j.start_time)} | {_when(j.end_time)} | {msg} |")
    return EXIT_OK


def cmd_logs(a: argparse.Namespace) -> int:
    c = client(a.address)
    job = latest(c, a.run, a.attempt)
    if a.follow:
        wait(c, job.submission_id, follow=True)
    else:
        sys.stdout.write(c.get_job_logs(job.submission_id))
    return EXIT_OK


def cmd_stop(a: argparse.Namespace) -> int:
    c = client(a.address)
    job = latest(c, a.run)
    if job.status.is_terminal():
        print(f"run {a.run} is not running: {job.submission_id} is {job.status}; resubmit to resume it")
        return EXIT_OK
    c.stop_job(job.submission_id)
    status = job.status if a.no_wait else wait(c, job.submission_id, follow=False, poll_s=0.5)
    print(f"{job.submission_id}: {status}; resubmit the same command to resume the run")
    return EXIT_OK


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = argv.pop(0) if argv and argv[0] in VERBS else "submit"
    a = _parser(verb).parse_args(argv)
    try:
        return {"submit": cmd_submit, "status": cmd_status, "logs": cmd_logs, "stop": cmd_stop}[verb](a)
    except (SubmitError, renv.RuntimeEnvError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ConnectionError as e:
        print(f"error: cannot reach the Ray job server at {a.address or 'the default address'}: {e}\n"
              "  is the cluster up and its dashboard reachable (port 8265 by default)?", file=sys.stderr)
        return EXIT_NO_CLUSTER


if __name__ == "__main__":
    sys.exit(main())
