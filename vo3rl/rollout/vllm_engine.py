"""The rollout engine on vLLM: requests in, finished turns out, one `step()` at a time.

Stepping (vLLM's `LLMEngine.add_request` / `step`) rather than one blocking call per turn lets the
episode driver (`vo3rl.rollout.episodes`) keep every episode's next turn in the engine at once: vLLM
batches turns of different episodes in the same forward passes, and a finished turn's episode goes on
(crop, observation) while the others keep decoding. The same class is also a blocking `Engine`
(`generate`), for one episode at a time.

`in_process` (the default) keeps vLLM's engine core inside this process: on a CPU box that is one
process instead of three and a start in about a minute instead of two or more. vLLM's CPU worker
replaces `torch.set_num_threads` with a no-op in the process that hosts it, so host it in its own
process (a Ray actor, a benchmark script), not in a process that also trains.

Weights are replaced in place (`update_weights`: vLLM's layer-wise reload, which re-applies its CPU/GPU
kernel packing), then the prefix, encoder and multimodal caches are reset so nothing computed with the
old weights is reused. An update may come from another thread while turns are decoding (asynchronous
RL): it waits for the current engine step, aborts the turns in flight, reloads, and re-submits them
(`vo3rl.rollout.partial`: resumed from the tokens sampled so far, or sampled again, by
`rollout.interrupted_turns`). Only then do the turns' outputs stream (vLLM's cumulative outputs), so
an engine that is never interrupted works exactly as before.

The weights arrive either as a state dict (`update_weights`: through Ray's object store) or over the
weight-sync process group (`join_weight_sync` once, then `receive_weights` per sync:
`rl.weight_sync: process_group`, `vo3rl.rollout.weight_group`); both go through the same interruption
and cache reset, and load through the same vLLM reload.

A colocated engine (`sleep_mode`, `placement.layout: colocated`) `sleep`s during the learner's update
and `wake_up`s before the next weight sync; each call reports the seconds and the device memory it moved
(`vo3rl.rollout.sleep`).
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Hashable

from vo3rl.agent.loop import STOP_STRINGS, TurnOutput, TurnRequest
from vo3rl.config.rollout import RolloutConfig
from vo3rl.log import get_logger
from vo3rl.rollout.engine_inputs import engine_prompt
from vo3rl.rollout.partial import TurnInFlight
from vo3rl.rollout.sleep import SleepFigures, free_device_bytes, freed_between, sleep_mode_support

log = get_logger(__name__)
WORKER_EXTENSION = "vo3rl.rollout.weight_group.WeightSyncExtension"


class EngineFailure(Exception):
    """A turn the engine could not produce (`reason`: rejected | prompt_mismatch)."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass
class EngineStats:
    """Counters since the engine started (or the last `reset_stats`): finished requests, their prompt
    tokens, how many of those the prefix cache supplied, and generated tokens."""

    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    interrupted_turns: int = 0

    def as_dict(self) -> dict[str, float]:
        hit = self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0
        return {"requests": self.requests, "prompt_tokens": self.prompt_tokens, "cached_tokens": self.cached_tokens,
                "generated_tokens": self.generated_tokens, "interrupted_turns": self.interrupted_turns,
                "prefix_cache_hit_rate": hit}


def engine_args(cfg: RolloutConfig, model_path: str) -> dict:
    """`cfg.engine_args`, plus one platform fix. vLLM 0.32 on CPU crashes ("CPU Generator does not use
    offset") when a request with its own seed is prefilled in chunks: the token sampled for the partial
    prefill is discarded by rewinding the request's generator, which CPU generators cannot do. So on
    CPU with seeded sampling, prompts are prefilled whole (no chunked prefill; a step may then hold a
    whole `max_model_len` prompt)."""
    import torch

    args = cfg.engine_args(model_path)
    # Its methods only add collective_rpc targets (the process-group weight sync); nothing else changes.
    args["worker_extension_cls"] = WORKER_EXTENSION
    if cfg.seed is not None and not torch.cuda.is_available():
        args["enable_chunked_prefill"] = False
        args["max_num_batched_tokens"] = max(args.get("max_num_batched_tokens") or 0, cfg.max_model_len)
    return args


def _sampled_logprobs(completion) -> list[float]:
    """The log-prob of each sampled token of a vLLM completion (asked for with logprobs=0)."""
    if completion.logprobs is None:
        return []
    return [entry[token].logprob for token, entry in zip(completion.token_ids, completion.logprobs)]


def _vllm_error() -> type:
    """vLLM's own request errors (e.g. more videos than `limit_mm_per_prompt`), which are no ValueError."""
    from vllm.exceptions import VLLMError

    return VLLMError


class VLLMEngine:
    """A vLLM engine over the HF directory `model_path`. `tokenizer` is the policy's (its ids for the
    chat markers and the video pad)."""

    def __init__(self, model_path: str, cfg: RolloutConfig, tokenizer, weight_version: int = 0,
                 stream_outputs: bool = False, sleep_mode: bool = False):
        """`weight_version`: the version of the weights at `model_path` (a resumed run's step);
        `stream_outputs`: ask vLLM for every step's output so far, so that a turn interrupted by a weight
        update can resume from its sampled tokens (asynchronous RL; costs a little per step);
        `sleep_mode`: the engine will `sleep` and `wake_up` (a colocated engine): built with vLLM's
        sleep mode where the platform has it (`vo3rl.rollout.sleep`)."""
        cfg.validate()
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if cfg.in_process else "1"
        if cfg.torch_threads is not None:
            import torch

            torch.set_num_threads(cfg.torch_threads)  # before vLLM's CPU worker turns it into a no-op
        from vllm.engine.arg_utils import EngineArgs
        from vllm.v1.engine.llm_engine import LLMEngine

        self.cfg = cfg
        self.model_path = str(model_path)
        args = engine_args(cfg, self.model_path)
        self.sleep_available, self.sleep_reason = sleep_mode_support() if sleep_mode else (False, "")
        if self.sleep_available:
            args["enable_sleep_mode"] = True
        self.engine = LLMEngine.from_engine_args(EngineArgs(**args))
        ids = tokenizer.convert_tokens_to_ids
        self.pad_id = ids("<|video_pad|>")
        self.end_ids = [ids("<|im_end|>"), ids("<|endoftext|>")]
        self.tokenizer = tokenizer
        self.stats = EngineStats()
        self.weight_version = weight_version
        self._ids = itertools.count()
        self._inflight: dict[str, TurnInFlight] = {}
        self._failed: list[tuple[Hashable, EngineFailure]] = []
        self._finished: list[tuple[Hashable, TurnOutput]] = []  # turns an interruption left with no budget
        self._lock = threading.Lock()  # one thread at a time talks to vLLM
        self._update_waiting = threading.Event()  # a weight update goes before the next step
        self._streaming = stream_outputs

    # -- sampling -----------------------------------------------------------------------------
    def sampling_params(self, max_tokens: int, stop: tuple[str, ...], greedy: bool, seed: int | None,
                        exact_tokens: bool = False, cumulative: bool = False):
        """vLLM SamplingParams of one turn: stop at any of `stop` (kept in the output) or end of turn;
        the sampled tokens' log-probs. `exact_tokens` generates exactly `max_tokens` tokens (benchmarks)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        cfg = self.cfg
        return SamplingParams(
            max_tokens=max_tokens, ignore_eos=exact_tokens,
            temperature=0.0 if greedy else cfg.temperature, top_p=1.0 if greedy else cfg.top_p,
            top_k=0 if greedy else cfg.top_k, seed=seed, logprobs=0,
            stop=None if exact_tokens or not stop else list(stop), include_stop_str_in_output=True,
            stop_token_ids=None if exact_tokens else list(self.end_ids), skip_special_tokens=False,
            output_kind=RequestOutputKind.CUMULATIVE if cumulative else RequestOutputKind.FINAL_ONLY,
            skip_reading_prefix_cache=None if cfg.native_context else True,
        )

    # -- stepping -----------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Requests in the engine, or results not yet collected by `step`."""
        return bool(self._inflight or self._failed or self._finished)

    def submit(self, key: Hashable, request: TurnRequest, greedy: bool = False, seed: int | None = None,
               exact_tokens: bool = False) -> None:
        """Queue one turn; its result comes back from a later `step()` under `key`. A request vLLM
        refuses comes back as an EngineFailure instead of raising here."""
        self._wait_for_update()
        with self._lock:
            self._add(TurnInFlight(key, request, greedy, seed, exact_tokens, self.weight_version))

    def _add(self, turn: TurnInFlight) -> None:
        """Hand `turn`'s current request (its context plus any kept tokens) to vLLM."""
        request_id = f"turn-{next(self._ids)}"
        salt = None if self.cfg.native_context else request_id
        request = turn.request
        try:
            prompt = engine_prompt(turn.context, request.clips, request.videos, self.pad_id, salt)
            if salt is not None:
                prompt["cache_salt"] = salt
            seed = turn.seed if turn.seed is None or not turn.interruptions else (turn.seed + turn.interruptions) & 0x7FFFFFFF
            params = self.sampling_params(turn.budget, request.stop, turn.greedy, seed, turn.exact_tokens,
                                          cumulative=self._streaming)
            self.engine.add_request(request_id, prompt, params)
        except (ValueError, TypeError, RuntimeError, _vllm_error()) as err:
            log.warning("vLLM refused a turn of %s: %s", turn.key, err)
            self._failed.append((turn.key, EngineFailure("rejected", str(err)[:500])))
            return
        self._inflight[request_id] = turn

    def step(self) -> list[tuple[Hashable, TurnOutput | EngineFailure]]:
        """One engine step; the turns that finished in it (and any refused at submission)."""
        self._wait_for_update()
        with self._lock:
            done: list[tuple[Hashable, TurnOutput | EngineFailure]] = self._failed + self._finished
            self._failed, self._finished = [], []
            if not self._inflight:
                return done
            for output in self.engine.step():
                turn = self._inflight.get(output.request_id)
                if turn is None:
                    continue
                if not output.finished:
                    self._remember(turn, output)
                    continue
                del self._inflight[output.request_id]
                done.append((turn.key, self._turn_output(output, turn)))
            return done

    def _remember(self, turn: TurnInFlight, output) -> None:
        """A streaming request's output so far, kept in case an update interrupts it."""
        completion = output.outputs[0]
        turn.seen_ids = list(completion.token_ids)
        turn.seen_logprobs = _sampled_logprobs(completion)
        turn.seen_text = completion.text

    def _turn_output(self, output, turn: TurnInFlight) -> TurnOutput | EngineFailure:
        context = turn.context
        if list(output.prompt_token_ids) != context:
            # vLLM expanded a video to another token count than our sampler: the learner would score
            # other positions than were generated. Refuse the turn rather than train on it.
            return EngineFailure("prompt_mismatch", f"vLLM's prompt has {len(output.prompt_token_ids)} tokens, "
                                 f"the context {len(context)}")
        completion = output.outputs[0]
        token_ids = list(completion.token_ids)
        logprobs = _sampled_logprobs(completion) if completion.logprobs is not None else None
        self.stats.requests += 1
        self.stats.prompt_tokens += len(context)
        self.stats.cached_tokens += int(output.num_cached_tokens or 0)
        self.stats.generated_tokens += len(token_ids)
        return turn.finish(token_ids, logprobs, completion.text, self.weight_version, self._decode)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def abort_all(self) -> None:
        """Drop every request in flight (after an error in the driver)."""
        with self._lock:
            if self._inflight:
                self.engine.abort_request(list(self._inflight))
            self._inflight.clear()
            self._failed.clear()
            self._finished.clear()

    def reset_stats(self) -> None:
        self.stats = EngineStats()

    # -- one blocking turn (the `Engine` protocol of vo3rl.agent.loop) ----------------------
    def generate(self, context: list[int], clips, max_new_tokens: int, stop: tuple[str, ...] = STOP_STRINGS,
                 videos=None) -> TurnOutput:
        """One greedy turn, blocking. `videos` (the VideoSpans) name the clips for vLLM's caches; without
        them each clip is hashed from its frames."""
        if self.busy:
            raise RuntimeError("generate() needs an idle engine")
        spans = list(videos) if videos is not None else [None] * len(clips)
        self.submit("single", TurnRequest(list(context), list(clips), spans, max_new_tokens, tuple(stop), 0), greedy=True)
        while True:
            for _, result in self.step():
                if isinstance(result, EngineFailure):
                    raise result
                return result

    # -- scoring given tokens -----------------------------------------------------------------
    def prompt_logprobs(self, requests: list[TurnRequest]) -> list:
        """float32 [len(context)] per request: vLLM's log-prob of each context token given the ones
        before it (NaN for the first), all requests batched. For checking rollout/learner agreement on
        trajectories the engine did not generate. The engine must be idle."""
        import numpy as np
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        if self.busy:
            raise RuntimeError("prompt_logprobs() needs an idle engine")
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False,
                                output_kind=RequestOutputKind.FINAL_ONLY)
        ids = {}
        for index, request in enumerate(requests):
            request_id = f"score-{next(self._ids)}"
            ids[request_id] = index
            self.engine.add_request(request_id, engine_prompt(request.context, request.clips, request.videos,
                                                              self.pad_id), params)
        out: list = [None] * len(requests)
        while ids:
            for output in self.engine.step():
                if output.finished and output.request_id in ids:
                    index = ids.pop(output.request_id)
                    tokens = requests[index].context
                    values = np.full(len(tokens), np.nan, dtype=np.float32)
                    for position, entry in enumerate(output.prompt_logprobs or []):
                        if entry is not None and position < len(tokens):
                            values[position] = entry[tokens[position]].logprob
                    out[index] = values
        return out

    # -- weights ------------------------------------------------------------------------------
    def update_weights(self, state_dict: dict, version: int | None = None) -> None:
        """Load `state_dict` (HF names, either the checkpoint's or transformers' module names) into the
        running engine, then reset its caches; `version` (default: one more) is the weights' version,
        which every turn sampled from now on carries. May be called from another thread while turns
        decode: they are interrupted between two steps and re-submitted (`rollout.interrupted_turns`)."""
        self._replace_weights(lambda: self.engine.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": list(state_dict.items()), "is_checkpoint_format": True}),
            version)

    def receive_weights(self, version: int | None = None) -> int:
        """`update_weights` with the weights broadcast over the weight-sync group (joined with
        `join_weight_sync`); blocks until the learner's rank 0 sends. Returns the bytes received (per
        engine worker)."""
        received = []
        self._replace_weights(lambda: received.extend(self.engine.collective_rpc("vo3rl_receive_weights")), version)
        return int(received[0]) if received else 0

    def _replace_weights(self, load, version: int | None) -> None:
        """Run `load()` (which reloads the weights in place) with the engine to itself: after the current
        step, the turns in flight interrupted and re-submitted afterwards, the caches reset."""
        self._update_waiting.set()
        try:
            with self._lock:
                interrupted = self._interrupt()
                load()
                self._clear_caches()
                self.weight_version = self.weight_version + 1 if version is None else int(version)
                for turn in interrupted:
                    if turn.budget > 0:
                        self._add(turn)
                    else:  # its whole budget was sampled before the update: the turn is complete
                        self._finished.append((turn.key, turn.finish([], [], "", self.weight_version)))
        finally:
            self._update_waiting.clear()

    def join_weight_sync(self, host: str, port: int, first_rank: int, world_size: int, backend: str,
                         timeout_s: float) -> list[int]:
        """Join the weight-sync group hosted at `host:port`; the engine's workers take the group ranks
        `first_rank`, `first_rank` + 1, ... (one per tensor-parallel rank). Blocks until the whole group
        has joined; returns the ranks taken."""
        with self._exclusive():
            return list(self.engine.collective_rpc("vo3rl_join_weight_sync",
                                                   args=(host, port, first_rank, world_size, backend, timeout_s)))

    def leave_weight_sync(self) -> None:
        with self._exclusive():
            self.engine.collective_rpc("vo3rl_leave_weight_sync")

    def weights_digest(self) -> dict[str, str]:
        """SHA-256 per loaded parameter and buffer (vLLM's names and layout) of the first engine worker:
        equal digests, bit-identical weights."""
        with self._exclusive():
            return self.engine.collective_rpc("vo3rl_weights_digest")[0]

    @contextmanager
    def _exclusive(self):
        """The engine to this thread between two steps, nothing interrupted."""
        self._update_waiting.set()
        try:
            with self._lock:
                yield
        finally:
            self._update_waiting.clear()

    def _interrupt(self) -> list[TurnInFlight]:
        """Abort every turn in flight, keeping (or dropping) what each sampled; from now on outputs
        stream so that a later interruption sees the tokens too."""
        turns = list(self._inflight.values())
        if turns:
            self.engine.abort_request(list(self._inflight))
            self._inflight.clear()
            resume = self.cfg.interrupted_turns == "resume"
            for turn in turns:
                turn.interrupt(resume)
            self.stats.interrupted_turns += len(turns)
            log.info("weight update interrupted %d turns (%s)", len(turns), self.cfg.interrupted_turns)
        self._streaming = True  # a later interruption must see the sampled tokens
        return turns

    def _wait_for_update(self) -> None:
        """Let a waiting weight update take the lock first (a Lock is not fair: a stepping loop would
        take it again at once)."""
        while self._update_waiting.is_set():
            time.sleep(0.001)

    # -- sleep mode (colocated engines) -------------------------------------------------------
    def sleep(self, level: int) -> SleepFigures:
        """Give the engine's device memory back (vLLM's sleep `level`: 1 keeps the weights in host
        memory, 2 drops them; both drop the KV cache) until `wake_up`. The engine must be idle. Without
        sleep mode (the CPU platform) only the scheduler pauses."""
        return self._sleep_or_wake(lambda: self.engine.sleep(level=level))

    def wake_up(self) -> SleepFigures:
        """Take the memory back and resume the scheduler; the caches start empty. After a level-2 sleep
        the weights are garbage until the next `update_weights` / `receive_weights`."""
        return self._sleep_or_wake(self._wake_up)

    def _wake_up(self) -> None:
        self.engine.wake_up()
        self._clear_caches()  # nothing the scheduler remembers may point at memory that was released

    def _sleep_or_wake(self, call) -> SleepFigures:
        with self._exclusive():
            if self._inflight:
                raise RuntimeError("sleep / wake_up with turns in flight")
            before, start = free_device_bytes(), time.perf_counter()
            call()
            seconds = time.perf_counter() - start
            freed = freed_between(before, free_device_bytes()) if self.sleep_available else 0
        return SleepFigures(seconds, freed, self.sleep_available, self.sleep_reason)

    def clear_caches(self) -> None:
        with self._lock:
            self._clear_caches()

    def _clear_caches(self) -> None:
        """Forget processed videos, vision embeddings and KV blocks. After a weight reload this is
        required, not an optimisation: the reload clears the model runner's encoder and multimodal
        caches but not the bookkeeping of the scheduler and the input processor, which would then
        promise vision embeddings that are gone (vLLM fails with "Encoder cache miss")."""
        if self._inflight:
            raise RuntimeError("clear_caches with requests in flight")
        self.engine.reset_mm_cache()
        self.engine.reset_encoder_cache()
        self.reset_prefix_cache()

    def reset_prefix_cache(self) -> bool:
        """Forget every cached KV block; True when vLLM did (it refuses while requests run)."""
        return bool(self.engine.reset_prefix_cache())

    def shutdown(self) -> None:
        self.abort_all()
        core = getattr(self.engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
