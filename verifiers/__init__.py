"""Ground truth for selfplay: math, code, puzzles and step checks.

Stands alone (no Ray, torch or selfplay imports): usable as a reward function by any trainer.

    from verifiers import verify
    verify({"task": "math", "answer": "1/2"}, "... so the answer is $\\boxed{0.5}$")
"""

from verifiers.base import Verdict, Verifier, get, register, tasks, verify

__all__ = ["Verdict", "Verifier", "get", "register", "tasks", "verify"]
