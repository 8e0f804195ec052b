"""Rendering a VideoPlan to frames and writing them as H.264 mp4 with PyAV.

Encoding is single-threaded with fixed settings and no timestamps from the clock, so the same plan
gives the same bytes (x264 is deterministic for a fixed thread count and input).
"""
from __future__ import annotations

import numpy as np

from vo3rl.config.synth import COLOURS
from vo3rl.data.synth_looks import LOOK_RGB, look_mask
from vo3rl.data.synth_plan import BACKGROUNDS, Event, VideoPlan


def _mask(event: Event, shape: str, height: int, width: int) -> np.ndarray:
    x1, y1, x2, y2 = event.box_px
    mask = np.zeros((height, width), dtype=bool)
    if shape == "box":
        mask[y1:y2, x1:x2] = True
        return mask
    ys, xs = np.mgrid[0:height, 0:width]
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, max((x2 - x1) / 2, 0.5), max((y2 - y1) / 2, 0.5)
    return ((xs + 0.5 - cx) / rx) ** 2 + ((ys + 0.5 - cy) / ry) ** 2 <= 1.0


def render_frames(plan: VideoPlan, shape: str = "box") -> np.ndarray:
    """uint8 [n_frames, height, width, 3]: scene backgrounds (with their looks, in "look" style) and
    the plan's events painted over them."""
    frames = np.empty((plan.n_frames, plan.height, plan.width, 3), dtype=np.uint8)
    for scene in plan.scenes:
        frames[scene.first_frame : scene.end_frame] = BACKGROUNDS[scene.background]
        if scene.look:
            frames[scene.first_frame : scene.end_frame, look_mask(scene.look, plan.height, plan.width)] = LOOK_RGB
    for event in plan.events:
        mask = _mask(event, shape, plan.height, plan.width)
        frames[event.first_frame : event.first_frame + event.n_frames, mask] = COLOURS[event.colour]
    return frames


def write_mp4(path: str, frames: np.ndarray, fps: int, crf: int = 18) -> None:
    """H.264 (yuv420p) mp4 at a constant `fps`; keyframe every second so crops seek cheaply."""
    import av

    with av.open(path, "w", format="mp4") as container:
        stream = container.add_stream(
            "libx264", rate=fps, options={"preset": "veryfast", "crf": str(crf), "g": str(fps), "bf": "0"}
        )
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.thread_count = 1
        for i, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = i
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
