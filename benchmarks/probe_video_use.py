"""Does a trained model read the video? Teacher-forced log-prob of the evidence colour word in SFT
chats, with each chat's own video vs the next chat's video swapped in (same times, same token counts).

    .venv/bin/python benchmarks/probe_video_use.py --model runs/tiny-demo/sft/final --data runs/tiny-demo/data [--n 48]

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


def colour_word_position(trajectory, colour_ids: dict[int, str]) -> int | None:
    """Index of the last assistant token that is a colour word, or None."""
    found = None
    for index, (token, role) in enumerate(zip(trajectory.token_ids, trajectory.roles)):
        if role == 1 and int(token) in colour_ids:
            found = index
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="HF checkpoint directory")
    parser.add_argument("--data", required=True, help="synthetic data folder (sft_train.jsonl, videos/)")
    parser.add_argument("--recipe", default="recipes/tiny_cpu/sft.yaml", help="for the video presets")
    parser.add_argument("--n", type=int, default=48, help="chats to probe")
    args = parser.parse_args()

    from vo3rl.config import load_recipe
    from vo3rl.config.learner import LearnerConfig
    from vo3rl.config.synth import COLOURS
    from vo3rl.model.tokenizer import build_tokenizer
    from vo3rl.sft.data import load_sft_trajectories
    from vo3rl.train.learner import Learner
    from vo3rl.video.budgets import resolved_presets

    recipe = load_recipe(args.recipe, [])
    tokenizer = build_tokenizer()
    split = load_sft_trajectories(os.path.join(args.data, "sft_train.jsonl"), tokenizer, resolved_presets(recipe.video.presets),
                                  4096, "video_o3", 0.0, args.data)
    chats = split.train[: args.n]
    colour_ids = {tokenizer.encode(" " + c)[0]: c for c in COLOURS if len(tokenizer.encode(" " + c)) == 1}
    swapped = []
    for index, chat in enumerate(chats):
        donor = chats[(index + 1) % len(chats)].videos[0].ref
        other = copy.copy(chat)
        other.videos = [replace(v, ref=donor) for v in chat.videos]
        swapped.append(other)
    learner = Learner(args.model, LearnerConfig(ranks=1), 1, tokenizer=tokenizer)
    own, _ = learner.logprobs(chats, with_entropy=False)
    other, _ = learner.logprobs(swapped, with_entropy=False)
    rows: dict[str, list[tuple[float, float]]] = {"after a crop": [], "from the global view": []}
    for chat, lp_own, lp_other in zip(chats, own, other):
        position = colour_word_position(chat, colour_ids)
        if position is not None:
            rows["after a crop" if len(chat.videos) > 1 else "from the global view"].append(
                (float(lp_own[position]), float(lp_other[position])))
    print(f"model {args.model}: log-prob of the colour word, own video vs a swapped one")
    for view, pairs in rows.items():
        if not pairs:
            continue
        gaps = [a - b for a, b in pairs]
        print(f"  {view:22s} n={len(pairs):3d}  own {statistics.mean(a for a, _ in pairs):7.3f}  "
              f"swapped {statistics.mean(b for _, b in pairs):7.3f}  mean gain {statistics.mean(gaps):6.3f} nats  "
              f"(chats gaining > 0.05: {sum(g > 0.05 for g in gaps)})")


if __name__ == "__main__":
    main()
