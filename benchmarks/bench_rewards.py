"""Reward throughput on one core, and a fuzz run of untrusted outputs through every parser and reward.

    .venv/bin/python benchmarks/bench_rewards.py [--fuzz 100000] [--seconds 1.0]

Prints rewards per second for each term and for the full Video-o3 and Open-o3 compositions (target:
the Video-o3 composition at >= 5,000 trajectories/s, so the reward stage never bounds a step), then
the fuzz result: outputs tried, exceptions raised, errors swallowed by reward terms (both must be 0).
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the fuzz generator lives with the tests
from fuzz_outputs import check_output, fuzz_outputs, fuzz_samples  # noqa: E402

from vo3rl.agent.parse import final_answer, parse_claims, parse_interval, parse_tool_call
from vo3rl.data.schema import DataType, KeyFrame, Sample, Task
from vo3rl.rewards import RewardConfig, score
from vo3rl.rewards.answer import box_iou, choice_reward, free_form_reward, interval_iou, tg_mcq_reward
from vo3rl.rewards.clue import clue_overlap
from vo3rl.rewards.format import open_o3_format, video_o3_format
from vo3rl.rewards.spatial import spatial_reward
from vo3rl.rewards.temporal import interval_fraction, sigma_at, temporal_proximity
from vo3rl.rewards.trajectory import trajectory_bonus
from vo3rl.video.types import VideoRef

VIDEO_O3_TARGET = 5000.0
REF = VideoRef("/videos/bench.mp4")
THINK = ("<think>The question asks what the person picks up after opening the fridge. The global view "
         "is too coarse around the middle, so I look closer at that part before answering.</think>\n")


def call(start: float, end: float, strategy: str = "medium") -> str:
    return THINK + f'<grounding>{{"temporal_segment": [{start:g}, {end:g}], "sampling_strategy": "{strategy}"}}</grounding>'


def video_o3_batch(rng: random.Random, n: int) -> list[tuple[Sample, list[str]]]:
    """Trajectories of every data type: 0-4 calls (one in ten broken), right and wrong answers, and
    single-turn temporal grounding."""
    batch = []
    types = [DataType.SINGLE_CLUE_TOOL, DataType.MULTI_CLUE_TOOL, DataType.SINGLE_CLUE_NO_TOOL,
             DataType.MULTI_CLUE_NO_TOOL, DataType.TEMPORAL_GROUNDING]
    for i in range(n):
        data_type = types[i % len(types)]
        single = data_type in (DataType.SINGLE_CLUE_TOOL, DataType.SINGLE_CLUE_NO_TOOL)
        clues = [(120.0, 150.0)] if single else [(40.0, 55.0), (300.0, 320.0)]
        if data_type == DataType.TEMPORAL_GROUNDING:
            sample = Sample(f"v{i}", "When is the fridge opened?", "[120, 150]", REF, Task.TEMPORAL_GROUNDING,
                            data_type, duration_s=600.0)
            start = rng.uniform(100, 140)
            batch.append((sample, [THINK + f'<answer>{{"temporal_segment": [{start:.1f}, {start + 25:.1f}]}}</answer>']))
            continue
        sample = Sample(f"v{i}", "What does the person pick up?", "C", REF, Task.MCQ, data_type,
                        ["A. a cup", "B. a phone", "C. an apple", "D. a book"], 600.0, clues)
        turns = []
        for _ in range(rng.randrange(0, 5)):
            start = rng.uniform(0, 550)
            turns.append(call(start, start + rng.uniform(0.5, 60), rng.choice(("coarse", "medium", "fine")))
                         if rng.random() > 0.1 else THINK + "<grounding>{'temporal_segment': [1, }</grounding>")
        turns.append(THINK + f"<answer>{rng.choice('ABCC')}</answer>")
        batch.append((sample, turns))
    return batch


def open_o3_batch(rng: random.Random, n: int) -> list[tuple[Sample, list[str]]]:
    frames = [KeyFrame(t, {"person": [(0.2, 0.1, 0.6, 0.9)], "apple": [(0.5, 0.5, 0.6, 0.6)]}) for t in (3.0, 7.5, 12.0)]
    tasks = [(Task.MCQ, "C"), (Task.FREE_FORM, "the person takes an apple from the fridge"),
             (Task.TEMPORAL_GROUNDING, "[6.5, 12.0]"), (Task.TG_MCQ, "C\n[6.5, 12.0]"),
             (Task.SPATIAL_GROUNDING, "[0.5, 0.5, 0.6, 0.6]")]
    answers = {Task.MCQ: "C", Task.FREE_FORM: "a person takes an apple out of the fridge",
               Task.TEMPORAL_GROUNDING: "From <t>7</t>s to <t>12.5</t>s", Task.TG_MCQ: "C\nFrom <t>7</t>s to <t>12</t>s",
               Task.SPATIAL_GROUNDING: "<obj>apple</obj><box>[224,168,270,200]</box>at<t>7.5</t>s"}
    batch = []
    for i in range(n):
        task, truth = tasks[i % len(tasks)]
        sample = Sample(f"o{i}", "What happens?", truth, REF, task, key_frames=frames)
        claims = "".join(
            f"the <obj>person</obj><box>[{rng.randint(60, 120)},30,270,300]</box>at<t>{rng.uniform(0, 14):.1f}</t>s "
            f"holds the <obj>apple</obj><box>[220,165,270,200]</box><box>[10,10,40,40]</box>at<t>{rng.uniform(0, 14):.1f}</t>s. "
            for _ in range(rng.randrange(1, 3)))
        batch.append((sample, [f"<think>{claims}</think><answer>{answers[task]}</answer>"]))
    return batch


def rate(fn, items: list, seconds: float) -> float:
    """Calls per second of fn(item), cycling over items for at least `seconds`, after one untimed
    pass (one-time costs such as loading rouge-score's nltk stemmer, ~1 s, are not per-call costs)."""
    for item in items:
        fn(item)
    calls, start = 0, time.perf_counter()
    while True:
        for item in items:
            fn(item)
        calls += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz", type=int, default=100_000, help="fuzz outputs to try (0: skip)")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measured term")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    rng = random.Random(0)
    v_batch, o_batch = video_o3_batch(rng, 512), open_o3_batch(rng, 500)
    v_cfg, o_cfg = RewardConfig(), RewardConfig(protocol="open_o3")
    frame = (448, 336)
    claims = [list(parse_claims(turns[0]).claims) for _, turns in o_batch]
    frames = o_batch[0][0].key_frames
    turns_flat = [t for _, turns in v_batch for t in turns]
    answers = [final_answer(turns[-1]) for _, turns in v_batch]
    segments = [[(c.call.start_s, c.call.end_s) for c in map(lambda t: parse_tool_call(t, 600.0), turns) if c.ok]
                for _, turns in v_batch]
    times = [[c.time_s for c in cs if c.time_s is not None] for cs in claims]
    ff = [(a, "a person takes an apple out of the fridge") for a in
          ("the person takes an apple from the fridge", "someone grabs a red apple", "a man opens the door")]

    s = args.seconds
    rows = [
        ("parse: tool call (one turn)", rate(lambda t: parse_tool_call(t, 600.0), turns_flat, s)),
        ("parse: grounded claims (one output)", rate(lambda b: parse_claims(b[1][0]), o_batch, s)),
        ("parse: temporal answer", rate(parse_interval, ["From <t>7</t>s to <t>12.5</t>s", "[3, 9]"], s)),
        ("answer: MCQ letter", rate(lambda a: choice_reward(a, "C"), answers, s)),
        ("answer: free-form ROUGE-1/2/L", rate(lambda p: free_form_reward(*p), ff, s)),
        ("answer: box IoU", rate(lambda b: box_iou(b, (0.1, 0.1, 0.5, 0.5)), [(0.2, 0.2, 0.6, 0.7)], s)),
        ("answer: interval IoU", rate(lambda b: interval_iou(b, (6.5, 12.0)), [(7.0, 12.5)], s)),
        ("answer: TG-MCQ", rate(lambda a: tg_mcq_reward(a, "C\n[6.5, 12.0]"), ["C\nFrom <t>7</t>s to <t>12</t>s"], s)),
        ("format: Video-o3 (whole trajectory)", rate(lambda b: video_o3_format(b[1], 600.0), v_batch, s)),
        ("format: Open-o3", rate(lambda b: open_o3_format(b[1][0], True), o_batch, s)),
        ("clue: hybrid score (single+multi)", rate(lambda seg: clue_overlap(seg, [(40.0, 55.0), (300.0, 320.0)]), segments, s)),
        ("trajectory: decay + bonus", rate(lambda k: trajectory_bonus(DataType.SINGLE_CLUE_TOOL, k, 0.7, 0.6), [1, 2, 3], s)),
        ("temporal: adaptive proximity", rate(lambda ts: temporal_proximity(ts, [3.0, 7.5, 12.0], sigma_at(0.3)), times, s)),
        ("temporal: interval fraction", rate(lambda ts: interval_fraction(ts, [(6.5, 12.0)]), times, s)),
        ("spatial: gated box reward", rate(lambda cs: spatial_reward(cs, frames, frame, 3.0), claims, s)),
        ("COMPOSED Video-o3 (trajectory)", rate(lambda b: score(b[0], b[1], v_cfg), v_batch, 2 * s)),
        ("COMPOSED Open-o3 (output)", rate(lambda b: score(b[0], b[1], o_cfg, 0.4, frame), o_batch, 2 * s)),
    ]
    print(f"reward throughput, 1 core ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores on the machine), Python {platform.python_version()}")
    print(f"| term | per second |\n|---|---|")
    for name, per_second in rows:
        print(f"| {name} | {per_second:,.0f} |")
    composed = dict(rows)["COMPOSED Video-o3 (trajectory)"]
    verdict = "meets" if composed >= VIDEO_O3_TARGET else "MISSES"
    print(f"Video-o3 composition: {composed:,.0f} trajectories/s, {verdict} the {VIDEO_O3_TARGET:,.0f}/s target")
    print(f"mean turns per Video-o3 trajectory: {len(turns_flat) / len(v_batch):.2f}")

    if args.fuzz:
        samples, configs = fuzz_samples(), [v_cfg, o_cfg]
        start = time.perf_counter()
        tried = failed = big = raw = 0
        examples = []
        for output in fuzz_outputs(args.fuzz, seed=12345):
            tried += 1
            big += len(output) >= 100_000
            raw += isinstance(output, bytes)
            failures = check_output(output, samples, configs)
            if failures:
                failed += 1
                examples.extend(failures[:1])
        elapsed = time.perf_counter() - start
        print(f"fuzz: {tried:,} outputs ({raw:,} non-UTF-8 byte strings, {big} of 100 kB garbage) x "
              f"{len(samples)} samples x 2 protocols through every parser and reward in {elapsed:.1f} s: "
              f"{failed} outputs raised or had an error swallowed")
        for example in examples[:5]:
            print("  ", example)


if __name__ == "__main__":
    main()
