"""A round's stats.json: numbers from the committed shards, named as selfplay.scoring names them."""

from __future__ import annotations

from tests.selfplay.test_distill import write_round

from selfplay.stats import RoundStats


def test_round_stats_name_each_rate_for_what_it_counts(tmp_path):
    # Per problem: one verified trace kept, one wrong trace the critic called correct.
    stats = RoundStats.from_round(write_round(tmp_path, 0, problems=3), wave=2).to_dict()
    assert stats["kept_rate"] == 0.5 and "accept_rate" not in stats
    assert stats["pass_at_1"] == 0.5 and stats["wave"] == 2 and stats["pass_at_wave"] == 1.0
    assert stats["critic"] == {"examples": 6, "wrong_share": 0.5, "accuracy": 0.5, "wrong_precision": None,
                               "wrong_recall": 0.0, "first_wrong_step_accuracy": 0.0, "unparsed": 0,
                               "auc": None, "best_threshold": None, "best_threshold_accuracy": None}
    assert _table_line(stats, "pass@2 (one wave)").endswith(" 1.000") and _table_line(stats, "kept rate").endswith(" 0.500")


def test_pass_at_wave_is_not_made_up_when_problems_drew_less_than_a_wave(tmp_path):
    # Two samples per problem and a wave of 4 (strategy.max_samples below strategy.wave): the
    # unbiased estimate is undefined. It used to read 1.0, a perfect score for half-wrong samples.
    stats = RoundStats.from_round(write_round(tmp_path, 0, problems=3), wave=4).to_dict()
    assert stats["pass_at_wave"] is None
    assert _table_line(stats, "pass@4 (one wave)").endswith(" -")


def _table_line(stats, name: str) -> str:
    return next(line for line in RoundStats.table(stats).splitlines() if line.strip().startswith(name))
