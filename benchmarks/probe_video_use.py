"""Does a trained model read the video? Teacher-forced log-prob of the evidence colour word in SFT
chats, with each chat's own video vs the next chat's video swapped in (same times, same token counts).

    .venv/bin/python benchmarks/probe_video_use.py --model runs/tiny-demo/sft/final --data runs/tiny-demo/data [--n 48]
    .venv/bin/python benchmarks/probe_video_use.py --model runs/tiny-seek/sft/final --data runs/tiny-seek/data --word look

`--word look` probes the marked task's clock instead: the first look name the reasoning writes ("The
maroon scene is the ribbed one"), read from the global view; another video has its mark elsewhere, so
a model that reads the clock loses log-prob there.

A model that ignores the video gives the same log-prob either way (about ln 1/4 for four colours); one
that reads it loses log-prob when the video is swapped. Printed per view: chats whose colour word
follows a crop (2 videos) and chats that answer from the global view (1 video).
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
from dataclasses import replace

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def word_position(trajectory, word_ids: dict[int, str], first: bool = False) -> int | None:
    """Index of the last (or `first`) assistant token that is one of `word_ids`, or None."""
    found = None
    for index, (token, role) in enumerate(zip(trajectory.token_ids, trajectory.roles)):
        if role == 1 and int(token) in word_ids:
            if first:
                return index
            found = index
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="HF checkpoint directory")
    parser.add_argument("--data", required=True, help="synthetic data folder (sft_train.jsonl, videos/)")
    parser.add_argument("--recipe", default="recipes/tiny_cpu/sft.yaml", help="for the video presets")
    parser.add_argument("--n", type=int, default=48, help="chats to probe")
    parser.add_argument("--word", choices=("colour", "look"), default="colour",
                        help="the evidence colour (last one) or the marked task's clock look (first one)")
    args = parser.parse_args()

    from vo3rl.config import load_recipe
    from vo3rl.config.learner import LearnerConfig
    from vo3rl.config.synth import COLOURS
    from vo3rl.data.synth_looks import CLOCK_LOOKS
    from vo3rl.model.tokenizer import build_tokenizer
    from vo3rl.sft.data import load_sft_trajectories
    from vo3rl.train.learner import Learner
    from vo3rl.video.budgets import resolved_presets

    recipe = load_recipe(args.recipe, [])
    tokenizer = build_tokenizer()
    split = load_sft_trajectories(os.path.join(args.data, "sft_train.jsonl"), tokenizer, resolved_presets(recipe.video.presets),
                                  4096, "video_o3", 0.0, args.data)
    chats = split.train[: args.n]
    words = COLOURS if args.word == "colour" else CLOCK_LOOKS
    first_tokens = [tokenizer.encode(" " + w)[0] for w in words]
    # A word is probed by its first token, when no other word starts with the same one.
    word_ids = {t: w for t, w in zip(first_tokens, words) if first_tokens.count(t) == 1}
    swapped = []
    for index, chat in enumerate(chats):
        donor = chats[(index + 1) % len(chats)].videos[0].ref
        other = copy.copy(chat)
        other.videos = [replace(v, ref=donor) for v in chat.videos]
        swapped.append(other)
    learner = Learner(args.model, LearnerConfig(ranks=1), 1, tokenizer=tokenizer)
    own, _ = learner.logprobs(chats, with_entropy=False)
    other, _ = learner.logprobs(swapped, with_entropy=False)
    # The look is always read from the global view (the first turn); the colour after a crop or not.
    labels = ("after a crop", "from the global view") if args.word == "colour" else ("tool chats", "no-tool chats")
    rows: dict[str, list[tuple[float, float]]] = {label: [] for label in labels}
    for chat, lp_own, lp_other in zip(chats, own, other):
        position = word_position(chat, word_ids, first=args.word == "look")
        if position is not None:
            rows[labels[0] if len(chat.videos) > 1 else labels[1]].append(
                (float(lp_own[position]), float(lp_other[position])))
    print(f"model {args.model}: log-prob of the {args.word} word ({len(word_ids)} of {len(words)} words have a "
          "first token of their own), own video vs a swapped one")
    for view, pairs in rows.items():
        if not pairs:
            continue
        gaps = [a - b for a, b in pairs]
        print(f"  {view:22s} n={len(pairs):3d}  own {statistics.mean(a for a, _ in pairs):7.3f}  "
              f"swapped {statistics.mean(b for _, b in pairs):7.3f}  mean gain {statistics.mean(gaps):6.3f} nats  "
              f"(chats gaining > 0.05: {sum(g > 0.05 for g in gaps)})")


if __name__ == "__main__":
    main()
