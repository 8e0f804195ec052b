"""Random and mutated model outputs, for checking that no parser or reward ever raises.

Seeds are well-formed outputs of both protocols; mutations are what a policy under RL really writes:
cut-off text, repeated or nested tags, wild numbers (huge, NaN, inf, negative, reversed), inverted
boxes, stray bytes that are not UTF-8, and now and then 100 kB of garbage.
"""
from __future__ import annotations

import random

SEEDS = (
    '<think>The cup appears early.</think>\n<grounding>{"temporal_segment": [12.5, 30], '
    '"sampling_strategy": "medium"}</grounding>',
    "<think>Now I can see it.</think>\n<answer>B</answer>",
    "<think>Clear enough.</think>\n<answer>(C) a red cup</answer>\n",
    "<think>Look again.</think><grounding>{'temporal_segment': [0, 4], 'sampling_strategy': 'fine'}</grounding>",
    "<think>A <obj>dog</obj><box>[10,20,110,140]</box><box>[5,5,50,50]</box>at<t>3.5</t>s runs, then "
    "<obj>ball</obj><box>[200,40,240,80]</box>at<t>7</t>s.</think><answer>A</answer>",
    "<think>It starts when <obj>man</obj><box>[1,2,3,4]</box>at<t>12</t>s sits.</think>"
    "<answer>From <t>12</t>s to <t>18.5</t>s</answer>",
    '<think>seek</think><answer>{"temporal_segment": [3, 9]}</answer>',
    "<think>the box</think><answer><obj>car</obj><box>[30,30,90,70]</box>at<t>2</t>s</answer>",
    "<think>two things</think><answer>B\nFrom <t>4</t>s to <t>8</t>s</answer>",
    "<answer>a man opens the red door slowly</answer>",
)
FRAGMENTS = (
    "<think>", "</think>", "<grounding>", "</grounding>", "<answer>", "</answer>", "<obj>", "</obj>",
    "<box>", "</box>", "<t>", "</t>", "at", "s", "{", "}", "[", "]", ",", '"', "'", "\n", ":",
    '"temporal_segment"', '"sampling_strategy"', '"fine"', '"ultra"', "From", "to", "(A)", "B.", "[C]",
    "NaN", "Infinity", "-Infinity", "1e309", "-1e309", "-5", "1" * 400, "0.0", "1e-320", "null", "true",
    "<|im_end|>", "<|video_pad|>", "\x00", "\ud800", "é", "字", "🙂", "\\u0000", "[[[[[[[[", "{{{{{{",
)
WILD_NUMBERS = ("NaN", "Infinity", "-1e400", "1e400", "-3", "99999999999999999999999", "0", "1" * 5000, "-0.0")


def _mutate(text: str, rng: random.Random) -> str | bytes:
    choice = rng.randrange(10)
    n = len(text)
    if choice == 0 and n:  # cut off
        return text[: rng.randrange(n)]
    if choice == 1 and n:  # delete a slice
        a = rng.randrange(n)
        return text[:a] + text[a + rng.randrange(1, 20) :]
    if choice == 2 and n:  # duplicate a slice (repeated tags)
        a = rng.randrange(n)
        b = min(n, a + rng.randrange(1, 60))
        return text[:b] + text[a:b] * rng.randrange(1, 4) + text[b:]
    if choice == 3:  # insert fragments (nested / unpaired tags, odd characters)
        for _ in range(rng.randrange(1, 6)):
            a = rng.randrange(n + 1)
            text = text[:a] + rng.choice(FRAGMENTS) + text[a:]
            n = len(text)
        return text
    if choice == 4:  # wild numbers in place of digits
        out, i = [], 0
        while i < len(text):
            if text[i].isdigit() and rng.random() < 0.5:
                j = i
                while j < len(text) and (text[j].isdigit() or text[j] == "."):
                    j += 1
                out.append(rng.choice(WILD_NUMBERS))
                i = j
            else:
                out.append(text[i])
                i += 1
        return "".join(out)
    if choice == 5:  # non-UTF-8 bytes
        raw = bytearray(text.encode("utf-8", errors="surrogatepass"))
        for _ in range(rng.randrange(1, 5)):
            raw.insert(rng.randrange(len(raw) + 1), rng.choice((0x80, 0xC3, 0xFF, 0xFE, 0xED)))
        return bytes(raw)
    if choice == 6:  # reversed or inverted geometry
        return text.replace("[12.5, 30]", "[30, 12.5]").replace("[10,20,110,140]", "[110,140,10,20]")
    if choice == 7:  # concatenation of two outputs
        return text + rng.choice(SEEDS)
    if choice == 8:  # random characters
        return "".join(rng.choice("<>/{}[]\"',.:0123456789 atsobjxnwerg\n") for _ in range(rng.randrange(200)))
    return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randrange(1, 40)))


def garbage(rng: random.Random, size: int = 100_000) -> str:
    """About `size` characters of tag-heavy garbage."""
    pieces, total = [], 0
    while total < size:
        piece = rng.choice(FRAGMENTS) if rng.random() < 0.7 else str(rng.random())
        pieces.append(piece)
        total += len(piece)
    return "".join(pieces)


def fuzz_outputs(count: int, seed: int = 0, garbage_every: int = 2000):
    """`count` untrusted outputs (str or bytes): seeds mutated 1-3 times, an empty string now and
    then, and a 100 kB garbage string every `garbage_every` items."""
    rng = random.Random(seed)
    for index in range(count):
        if garbage_every and index % garbage_every == garbage_every - 1:
            yield garbage(rng)
            continue
        if index % 97 == 0:
            yield ""
            continue
        out = rng.choice(SEEDS)
        for _ in range(rng.randrange(1, 4)):
            out = _mutate(out if isinstance(out, str) else out.decode("utf-8", errors="replace"), rng)
        yield out


def fuzz_samples():
    """Ground truths covering every task and data type, including thin ones (no clues, no
    duration, key frames without boxes)."""
    from vo3rl.data.schema import DataType, KeyFrame, Sample, Task
    from vo3rl.video.types import VideoRef

    ref = VideoRef("/nonexistent.mp4")
    frames = [KeyFrame(3.0, {"dog": [(0.05, 0.1, 0.5, 0.7)]}), KeyFrame(7.0, {"ball": [(0.8, 0.2, 0.9, 0.4)]}),
              KeyFrame(12.0, {})]
    return [
        Sample("mcq", "q", "B", ref, Task.MCQ, DataType.SINGLE_CLUE_TOOL, ["A. a", "B. b"], 60.0, [(10.0, 30.0)]),
        Sample("multi", "q", "A", ref, Task.MCQ, DataType.MULTI_CLUE_TOOL, ["A. a"], 60.0, [(1.0, 4.0), (20.0, 25.0)]),
        Sample("direct", "q", "C", ref, Task.MCQ, DataType.SINGLE_CLUE_NO_TOOL, [], None, []),
        Sample("multi_direct", "q", "C", ref, Task.MCQ, DataType.MULTI_CLUE_NO_TOOL, [], 0.0, []),
        Sample("tg", "q", "[3, 9]", ref, Task.TEMPORAL_GROUNDING, DataType.TEMPORAL_GROUNDING, [], 20.0),
        Sample("ff", "q", "a man opens the red door", ref, Task.FREE_FORM, key_frames=frames),
        Sample("tgmcq", "q", "B\n[4, 8]", ref, Task.TG_MCQ, key_frames=frames),
        Sample("sg", "q", "[0.1, 0.1, 0.5, 0.5]", ref, Task.SPATIAL_GROUNDING, key_frames=frames),
    ]


def check_output(output, samples, configs, frame_size=(448, 336)) -> list[str]:
    """Run `output` through every parser and reward; return a description of each exception (and of
    each error a reward term swallowed). An empty list means the output was handled."""
    from vo3rl.agent import parse
    from vo3rl.agent.trajectory import tag_token_spans
    from vo3rl.data.schema import DataType
    from vo3rl.rewards import answer, clue, spatial, temporal, trajectory
    from vo3rl.rewards import format as fmt
    from vo3rl.rewards.compose import score

    failures = []
    text = parse.as_text(output)

    def attempt(name, fn, *args):
        try:
            return fn(*args)
        except Exception as exc:  # the point of the fuzz: record instead of stopping
            failures.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
            return None

    call = attempt("parse_tool_call", parse.parse_tool_call, output, 60.0)
    attempt("parse_tool_call(no duration)", parse.parse_tool_call, output, None)
    found = attempt("final_answer", parse.final_answer, output)
    attempt("classify_turn", parse.classify_turn, output)
    attempt("parse_choice", parse.parse_choice, output)
    claims = attempt("parse_claims", parse.parse_claims, output)
    attempt("think_text", parse.think_text, output)
    times = attempt("parse_timestamps", parse.parse_timestamps, output) or []
    attempt("parse_interval", parse.parse_interval, output)
    attempt("parse_box", parse.parse_box, text[:300])
    attempt("tags_balanced", parse.tags_balanced, text, "t")
    attempt("tag_token_spans", tag_token_spans, [text[i : i + 3].encode("utf-8", "surrogatepass")
                                                 for i in range(0, min(len(text), 3000), 3)], 0)
    attempt("choice_reward", answer.choice_reward, found, "B")
    attempt("rouge_scores", answer.rouge_scores, text, "a man opens the red door")
    attempt("temporal_answer_reward", answer.temporal_answer_reward, found, "[3, 9]")
    attempt("tg_mcq_reward", answer.tg_mcq_reward, found, "B\n[4, 8]")
    attempt("spatial_answer_reward", answer.spatial_answer_reward, found, "[0.1, 0.1, 0.5, 0.5]", frame_size)
    attempt("video_o3_format", fmt.video_o3_format, [output, output], 60.0)
    attempt("open_o3_format", fmt.open_o3_format, output, True)
    segment = [(call.call.start_s, call.call.end_s)] if call is not None and call.ok else [(5.0, 2.0)]
    overlap = attempt("clue_overlap", clue.clue_overlap, segment, [(10.0, 30.0), (float("nan"), 1.0)])
    if overlap is not None:
        attempt("trajectory_bonus", trajectory.trajectory_bonus, DataType.SINGLE_CLUE_TOOL, 3,
                overlap.single, overlap.multi)
    attempt("temporal_proximity", temporal.temporal_proximity, times, [3.0, 7.0], 2.0)
    attempt("interval_fraction", temporal.interval_fraction, times, [(3.0, 9.0)])
    if claims is not None:
        attempt("spatial_reward", spatial.spatial_reward, list(claims.claims), samples[-1].key_frames, frame_size)
    for cfg in configs:
        for sample in samples:
            result = attempt(f"score[{cfg.protocol}/{sample.id}]", score, sample, [output, output], cfg, 0.5,
                             frame_size)
            if result is not None and result.errors:
                failures.append(f"score[{cfg.protocol}/{sample.id}] swallowed {result.errors}")
    return failures
