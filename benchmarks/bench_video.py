"""Video I/O figures: sampler throughput vs raw decord, the decode-once cache, synthetic generation.

    .venv/bin/python benchmarks/bench_video.py [--repeats 3] [--keep DIR]

Prints what it measured, targets next to the figures (sampler overhead <= 15% over raw decord
`get_batch` on the same frame indices; cached crops >= 3x faster than uncached). It writes its own
videos (a 60 s 640x360 clip, a 10-minute 160x120 clip) to a temporary folder.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from vo3rl.config.synth import SynthConfig
from vo3rl.data.synth import generate
from vo3rl.video.budgets import crop_spec, preset
from vo3rl.video.cache import DecodeCache
from vo3rl.video.sampler import resize_frames, sample_clip
from vo3rl.video.types import VideoRef


def write_test_video(path: str, seconds: int, fps: int, width: int, height: int) -> str:
    """A moving gradient with a sweeping bar: enough detail that decoding costs what real video costs.
    An existing file is reused (see --keep)."""
    import av

    if os.path.isfile(path):
        return path
    ys, xs = np.mgrid[0:height, 0:width]
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(seconds * fps):
            frame = np.empty((height, width, 3), np.uint8)
            frame[..., 0] = (xs + 3 * i) % 256
            frame[..., 1] = (ys + 2 * i) % 256
            frame[..., 2] = ((xs + ys) // 2 + i) % 256
            frame[:, (5 * i) % width] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired_medians(first, second, repeats: int) -> tuple[float, float]:
    """Median seconds of two functions run alternately, so a burst of load hits both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def bench_sampler(path: str, repeats: int) -> None:
    import decord

    print(f"\n== Sampler vs raw decord get_batch (60 s, 30 fps, 640x360 H.264; median of {repeats}) ==")
    print(f"{'request':<22}{'frames':>7}{'tokens':>8}{'sampler s':>11}{'raw s':>8}{'resize s':>10}"
          f"{'frames/s':>10}{'tokens/s':>11}{'overhead':>10}")
    ref = VideoRef(path)
    cases = {
        "global (2 fps)": preset("global"),
        "crop fine 20-30 s": crop_spec("fine", 20.0, 30.0),
        "crop coarse 0-60 s": crop_spec("coarse", 0.0, 60.0),
        "open_o3 (16 frames)": preset("open_o3"),
    }
    for name, spec in cases.items():
        clip = sample_clip(ref, spec)
        indices = clip.frame_indices.tolist()

        def raw():
            reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
            reader.get_batch(indices).asnumpy()

        t_sampler, t_raw = paired_medians(lambda: sample_clip(ref, spec), raw, repeats)
        decoded = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1).get_batch(indices).asnumpy()
        t_resize = min(timed(lambda: resize_frames(decoded, clip.height, clip.width)) for _ in range(repeats))
        overhead = (t_sampler - t_raw) / t_raw * 100
        print(f"{name:<22}{len(indices):>7}{clip.n_vision_tokens:>8}{t_sampler:>11.3f}{t_raw:>8.3f}{t_resize:>10.3f}"
              f"{len(indices) / t_sampler:>10.1f}{clip.n_vision_tokens / t_sampler:>11.0f}{overhead:>9.1f}%")
    print("target: overhead <= 15%. The sampler also resizes to the Qwen size (raw decord does not): 'resize s' is\n"
          "that work alone, single-threaded; the sampler runs it on a second thread while decoding, so it only\n"
          "hides when a core is free.")


def bench_cache(path: str, repeats: int) -> None:
    print(f"\n== Decode-once cache: five crops of one 10-minute video (25 fps, 160x120; median of {repeats}) ==")
    ref = VideoRef(path)
    scenarios = {
        "same window x5 (G rollouts / learner)": [(120.0, 180.0)] * 5,
        "overlapping windows": [(120.0, 180.0), (130.0, 190.0), (140.0, 200.0), (125.0, 185.0), (120.0, 180.0)],
        "disjoint windows": [(30.0, 90.0), (150.0, 210.0), (270.0, 330.0), (390.0, 450.0), (510.0, 570.0)],
    }
    print(f"{'scenario':<40}{'uncached s':>11}{'cached s':>10}{'speed-up':>10}")
    for name, windows in scenarios.items():
        specs = [crop_spec("fine", a, b) for a, b in windows]

        def uncached():
            for spec in specs:
                sample_clip(ref, spec)

        def cached():
            cache = DecodeCache()  # fresh: the first crop pays the decode
            for spec in specs:
                sample_clip(ref, spec, cache)

        t_off, t_on = paired_medians(uncached, cached, repeats)
        print(f"{name:<40}{t_off:>11.3f}{t_on:>10.3f}{t_off / t_on:>9.1f}x")
    print("target: >= 3x for repeated crops; disjoint windows share no frames, so only the open is saved")


def bench_synth(out: str) -> None:
    cfg = SynthConfig(n_train_videos=16, n_eval_videos=4)
    start = time.perf_counter()
    manifest = generate(cfg, out)
    seconds = time.perf_counter() - start
    n = sum(manifest["counts"]["videos"].values())
    video_s = manifest["counts"]["video_seconds"]
    print(f"\n== Synthetic generation (defaults: {cfg.width}x{cfg.height}, {cfg.fps} fps, {cfg.duration_s:g} s videos) ==")
    print(f"{n} videos, {video_s:.0f} s of video in {seconds:.2f} s: {n / seconds:.1f} videos/s, "
          f"{video_s / seconds:.0f} s of video/s (incl. JSONL and manifest)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", default=None, help="folder for the test videos, kept and reused by later runs; default: a temp folder")
    args = parser.parse_args()
    folder = args.keep or tempfile.mkdtemp(prefix="vo3rl_bench_video_")
    os.makedirs(folder, exist_ok=True)
    print(f"videos in {folder}; cpu count {os.cpu_count()}; load average {os.getloadavg()[0]:.2f} (other work slows every figure)")
    start = time.perf_counter()
    clip60 = write_test_video(os.path.join(folder, "clip60.mp4"), seconds=60, fps=30, width=640, height=360)
    long10 = write_test_video(os.path.join(folder, "long10min.mp4"), seconds=600, fps=25, width=160, height=120)
    print(f"test videos written in {time.perf_counter() - start:.1f} s")
    bench_sampler(clip60, args.repeats)
    bench_cache(long10, args.repeats)
    bench_synth(os.path.join(folder, "synth"))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
