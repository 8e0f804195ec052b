"""A small fuzz run: random and mutated model outputs through every parser and reward, no exceptions.
(The benchmark runs the same check on 100,000 outputs.)"""
from fuzz_outputs import check_output, fuzz_outputs, fuzz_samples

from vo3rl.rewards import RewardConfig

CONFIGS = [RewardConfig(), RewardConfig(protocol="open_o3")]


def test_fuzz_outputs_raise_nothing():
    samples = fuzz_samples()
    outputs = list(fuzz_outputs(3000, seed=7, garbage_every=500))
    assert sum(isinstance(o, bytes) for o in outputs) > 50  # the mix really has non-UTF-8 bytes ...
    assert sum(len(o) >= 100_000 for o in outputs) == 6  # ... and 100 kB garbage
    failures = [(repr(o[:200]), f) for o in outputs if (f := check_output(o, samples, CONFIGS))]
    assert failures == []


def test_the_checker_reports_what_it_catches():
    # A sample whose task is not a Task makes the accuracy term raise; the checker must say so.
    samples = fuzz_samples()
    samples[0].task = "bogus"
    failures = check_output("<think>x</think>\n<answer>B</answer>", samples[:1], CONFIGS)
    assert failures and all("accuracy" in f for f in failures)
