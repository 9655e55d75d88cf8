"""The flywheel's report: the test-time curves of the start model and the last round, and
revisions against resampling, in report.md and report.png."""

from __future__ import annotations

from selfplay.report import markdown, write_report


def _curves(shift: float) -> dict:
    ks = {"1": 0.3, "2": 0.35, "4": 0.4, "8": 0.45, "16": 0.5}
    return {"hard": {m: {k: round(v + shift + d, 4) for k, v in ks.items()} for m, d in
                     (("majority", 0.0), ("critic_best", 0.05), ("critic_vote", 0.03), ("oracle", 0.3))}
            | {"greedy": 0.4 + shift, "problems": 40, "samples": 16}}


def _state() -> dict:
    def row(k, curves=None, revisions=0):
        r = {"round": k, "difficulty": 3, "pass_at_1": 0.4 + 0.05 * k, "bands": {"hard": 0.4 + 0.05 * k},
             "verified_rate": 0.5, "accepted": 10, "critic_accuracy": 0.5, "critic_auc": 0.7, "tokens": 1000,
             "seconds": 1.0, "revise_vs_resample": {"revisions": revisions, "revisions_verified": revisions // 2,
                                                    "revision_tokens": 40 * revisions, "revision_verified_share": 0.5 if revisions else None,
                                                    "revision_verified_per_1k_tokens": 12.5 if revisions else None,
                                                    "samples": 100, "samples_verified": 50, "sample_tokens": 4000,
                                                    "sample_verified_share": 0.5, "sample_verified_per_1k_tokens": 12.5}}
        return r | ({"test_time": curves} if curves else {})

    return {"rounds": [row(0, _curves(0.0)), row(1, revisions=8), row(2, _curves(0.1), revisions=6)], "control": []}


def test_the_report_shows_test_time_curves_for_the_start_model_and_the_last_round(tmp_path):
    text = markdown(_state())
    assert "| round | greedy pass@1 | selection | k=1 | k=2 | k=4 | k=8 | k=16 |" in text
    assert "| 0 | 0.400 | critic best-of-k | 0.350 | 0.400 | 0.450 | 0.500 | 0.550 |" in text
    assert "| 2 | 0.500 | majority vote | 0.400 | 0.450 | 0.500 | 0.550 | 0.600 |" in text
    assert "| 1 | 8 | 0.500 | 12.500 | 100 | 0.500 | 12.500 |" in text
    assert "critic_auc" in text
    write_report(_state(), tmp_path)
    png = (tmp_path / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and (tmp_path / "report.md").read_text() == text


def test_a_flywheel_without_curves_or_revisions_says_so(tmp_path):
    state = _state()
    for r in state["rounds"]:
        r.pop("test_time", None)
        r["revise_vs_resample"]["revisions"] = 0
    text = markdown(state)
    assert "No test-time curves" in text and "No round ran revisions" in text
    write_report(state, tmp_path)
