"""Many episodes at once over one stepping engine.

Each episode is the loop of `vo3rl.agent.loop.episode`: a generator that yields its next turn's
request and is sent the generated turn. This driver keeps the next turn of every live episode in the
engine, so vLLM batches turns of different episodes, at different turns, in the same forward passes
(continuous batching; no episode waits for the slowest one of a "round"). When a turn finishes, its
episode advances (parse, crop, render the observation) on a worker thread while the engine keeps
stepping the others; only this thread touches the engine.
"""
from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Hashable, Protocol

from vo3rl.agent.loop import EpisodeSteps, TurnOutput, TurnRequest
from vo3rl.agent.trajectory import Trajectory
from vo3rl.video.types import VideoError


class SteppingEngine(Protocol):
    busy: bool

    def submit(self, key: Hashable, request: TurnRequest, greedy: bool = False, seed: int | None = None) -> None: ...

    def step(self) -> list[tuple[Hashable, object]]:
        """Finished turns as (key, TurnOutput), or (key, an exception with a `reason`) for a turn the
        engine could not produce."""
        ...

    def abort_all(self) -> None: ...


@dataclass
class EpisodeOutcome:
    """How one episode ended: its Trajectory, or the reason it has none (`video:<reason>` when a
    video could not be read before the first turn, else the engine's failure reason)."""

    trajectory: Trajectory | None = None
    reason: str | None = None
    seconds: float = 0.0  # wall seconds from the start of `run_episodes` to this episode's end


def engine_counts(engine) -> dict[str, float]:
    """The engine's running counters (requests, prompt / cached / generated tokens), {} without any."""
    stats = getattr(engine, "stats", None)
    return stats.as_dict() if stats is not None else {}


def _advance(steps: EpisodeSteps, output: TurnOutput | None):
    """The episode's next request, or its outcome when it ended."""
    try:
        return steps.send(output) if output is not None else next(steps)
    except StopIteration as finished:
        return EpisodeOutcome(trajectory=finished.value)
    except VideoError as err:
        return EpisodeOutcome(reason=f"video:{err.reason}")


def run_episodes(engine: SteppingEngine, episodes: dict[Hashable, EpisodeSteps], threads: int = 2,
                 greedy: bool = False, seed_for: Callable[[Hashable, int], int | None] | None = None,
                 on_done: Callable[[int], None] | None = None) -> dict[Hashable, EpisodeOutcome]:
    """Run every episode to its end. `seed_for(key, turn)` gives each request's sampling seed.
    `threads` 0 advances episodes on this thread (simpler, no overlap with the engine).
    `on_done(n)` hears the number of finished episodes whenever it grows (for progress lines)."""
    outcomes: dict[Hashable, EpisodeOutcome] = {}
    pending: dict[Future, Hashable] = {}
    pool = ThreadPoolExecutor(threads, thread_name_prefix="episode") if threads else None
    started = time.perf_counter()

    def finish(key: Hashable, outcome: EpisodeOutcome) -> None:
        outcome.seconds = time.perf_counter() - started
        outcomes[key] = outcome
        if on_done is not None:
            on_done(len(outcomes))

    def handle(key: Hashable, result) -> None:
        if isinstance(result, EpisodeOutcome):
            finish(key, result)
        else:
            engine.submit(key, result, greedy=greedy, seed=seed_for(key, result.turn) if seed_for else None)

    def advance(key: Hashable, output: TurnOutput | None) -> None:
        if pool is None:
            handle(key, _advance(episodes[key], output))
        else:
            pending[pool.submit(_advance, episodes[key], output)] = key

    try:
        for key in episodes:
            advance(key, None)
        while len(outcomes) < len(episodes):
            if pending:
                done, _ = wait(pending, timeout=0 if engine.busy else None, return_when=FIRST_COMPLETED)
                for future in done:
                    handle(pending.pop(future), future.result())
            if engine.busy:
                for key, result in engine.step():
                    if isinstance(result, TurnOutput):
                        advance(key, result)
                    else:
                        episodes[key].close()
                        finish(key, EpisodeOutcome(reason=getattr(result, "reason", "engine_error")))
            elif not pending and len(outcomes) < len(episodes):
                raise RuntimeError("episode driver stalled: nothing in the engine and nothing advancing")
    except BaseException:
        engine.abort_all()
        for future in pending:
            future.cancel()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return outcomes
