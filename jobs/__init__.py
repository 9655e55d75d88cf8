"""Run selfplay on a Ray cluster through the Ray Job Submission API.

`python -m jobs.submit` submits an entry point (`selfplay.generate`, ...) with Hydra overrides
under a run name, and has `status`, `logs` and `stop` verbs; `jobs/runtime_env.yaml` is what every
job runs in. A resubmitted run resumes where the last attempt stopped (see jobs/submit.py).
"""
