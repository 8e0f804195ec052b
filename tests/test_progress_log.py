"""ProgressLog: the progress lines of long work nobody watches a bar for (Ray workers, job logs)."""
import logging

import pytest

from vo3rl.log import ProgressLog


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.INFO, logger="vo3rl.progress")
    return lambda: [record.getMessage() for record in caplog.records if record.name == "vo3rl.progress"]


def test_a_line_every_interval_with_rate_and_time_left(lines):
    clock = FakeClock()
    log = ProgressLog("eval", 125, every_s=30, clock=clock)
    clock.now += 10
    log.update(10)  # 10 s in: not yet due
    assert lines() == []
    clock.now += 85
    log.update(40)  # 95 s for 40: 85 left at the same rate take ~202 s
    clock.now += 5
    log.update(41)  # 5 s after the last line: quiet
    clock.now += 200
    log.update(125)
    log.update(125)  # the end is logged once
    assert lines() == ["eval: 40/125 episodes (32%), 95 s, about 3 min left", "eval: 125/125 episodes (100%), 5 min"]


def test_short_work_stays_quiet(lines):
    clock = FakeClock()
    log = ProgressLog("eval", 3, unit="samples", every_s=30, clock=clock)
    for done in range(4):
        clock.now += 1
        log.update(done)
    assert lines() == []


def test_work_that_took_the_interval_logs_its_end_even_without_earlier_lines(lines):
    clock = FakeClock()
    log = ProgressLog("gen eval", 2, unit="samples", every_s=30, clock=clock)
    clock.now += 29
    log.update(1)
    clock.now += 3600 * 2
    log.update(2)
    assert lines() == ["gen eval: 2/2 samples (100%), 2.0 h"]
