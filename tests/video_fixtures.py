"""Small videos the video and data tests write: each frame is a flat grey whose level encodes the
frame's index, so a test can tell which frame the sampler decoded."""
from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np

LEVEL_STEP = 7  # grey level per frame index; H.264 keeps flat levels within +-3


def level_of(index: int) -> int:
    return (index * LEVEL_STEP) % 256


def index_of(frame: np.ndarray, n_frames: int) -> int:
    """The frame index whose grey level is nearest to the frame's mean level."""
    mean = float(frame.mean())
    return min(range(n_frames), key=lambda i: abs(level_of(i) - mean))


def write_mp4(
    path: str, pts_s: list[float], width: int = 64, height: int = 48, rate: int = 10, bframes: bool = False
) -> str:
    """H.264 mp4 with one frame per presentation time in `pts_s` (seconds, increasing; millisecond
    resolution). Uneven spacing gives a variable-frame-rate file. With B-frames, FFmpeg's declared
    average rate for an uneven file comes out wrong (frame count over a too-short duration)."""
    tb = Fraction(1, 1000)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=rate, options={} if bframes else {"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = tb
        stream.codec_context.time_base = tb
        for i, t in enumerate(pts_s):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), level_of(i), np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), tb
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_cfr_mp4(path: str, n_frames: int, fps: int, width: int = 64, height: int = 48) -> str:
    return write_mp4(path, [i / fps for i in range(n_frames)], width, height, rate=fps)


def write_frame_folder(folder: str, n_frames: int, width: int = 40, height: int = 30) -> str:
    """PNG frames named frame_1.png .. frame_N.png (natural order differs from string order)."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for i in range(n_frames):
        Image.fromarray(np.full((height, width, 3), level_of(i), np.uint8)).save(os.path.join(folder, f"frame_{i + 1}.png"))
    return folder
