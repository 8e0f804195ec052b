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
old weights is reused.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Hashable

from vo3rl.agent.loop import STOP_STRINGS, TurnOutput, TurnRequest
from vo3rl.config.rollout import RolloutConfig
from vo3rl.log import get_logger
from vo3rl.rollout.engine_inputs import engine_prompt

log = get_logger(__name__)


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

    def as_dict(self) -> dict[str, float]:
        hit = self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0
        return {"requests": self.requests, "prompt_tokens": self.prompt_tokens, "cached_tokens": self.cached_tokens,
                "generated_tokens": self.generated_tokens, "prefix_cache_hit_rate": hit}


def engine_args(cfg: RolloutConfig, model_path: str) -> dict:
    """`cfg.engine_args`, plus one platform fix. vLLM 0.32 on CPU crashes ("CPU Generator does not use
    offset") when a request with its own seed is prefilled in chunks: the token sampled for the partial
    prefill is discarded by rewinding the request's generator, which CPU generators cannot do. So on
    CPU with seeded sampling, prompts are prefilled whole (no chunked prefill; a step may then hold a
    whole `max_model_len` prompt)."""
    import torch

    args = cfg.engine_args(model_path)
    if cfg.seed is not None and not torch.cuda.is_available():
        args["enable_chunked_prefill"] = False
        args["max_num_batched_tokens"] = max(args.get("max_num_batched_tokens") or 0, cfg.max_model_len)
    return args


def _vllm_error() -> type:
    """vLLM's own request errors (e.g. more videos than `limit_mm_per_prompt`), which are no ValueError."""
    from vllm.exceptions import VLLMError

    return VLLMError


class VLLMEngine:
    """A vLLM engine over the HF directory `model_path`. `tokenizer` is the policy's (its ids for the
    chat markers and the video pad)."""

    def __init__(self, model_path: str, cfg: RolloutConfig, tokenizer):
        cfg.validate()
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if cfg.in_process else "1"
        if cfg.torch_threads is not None:
            import torch

            torch.set_num_threads(cfg.torch_threads)  # before vLLM's CPU worker turns it into a no-op
        from vllm.engine.arg_utils import EngineArgs
        from vllm.v1.engine.llm_engine import LLMEngine

        self.cfg = cfg
        self.model_path = str(model_path)
        self.engine = LLMEngine.from_engine_args(EngineArgs(**engine_args(cfg, self.model_path)))
        ids = tokenizer.convert_tokens_to_ids
        self.pad_id = ids("<|video_pad|>")
        self.end_ids = [ids("<|im_end|>"), ids("<|endoftext|>")]
        self.stats = EngineStats()
        self.weight_version = 0
        self._ids = itertools.count()
        self._inflight: dict[str, tuple[Hashable, list[int]]] = {}
        self._failed: list[tuple[Hashable, EngineFailure]] = []

    # -- sampling -----------------------------------------------------------------------------
    def sampling_params(self, max_tokens: int, stop: tuple[str, ...], greedy: bool, seed: int | None,
                        exact_tokens: bool = False):
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
            output_kind=RequestOutputKind.FINAL_ONLY,
            skip_reading_prefix_cache=None if cfg.native_context else True,
        )

    # -- stepping -----------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Requests in the engine, or failures not yet collected by `step`."""
        return bool(self._inflight or self._failed)

    def submit(self, key: Hashable, request: TurnRequest, greedy: bool = False, seed: int | None = None,
               exact_tokens: bool = False) -> None:
        """Queue one turn; its result comes back from a later `step()` under `key`. A request vLLM
        refuses comes back as an EngineFailure instead of raising here."""
        request_id = f"turn-{next(self._ids)}"
        salt = None if self.cfg.native_context else request_id
        try:
            prompt = engine_prompt(request.context, request.clips, request.videos, self.pad_id, salt)
            if salt is not None:
                prompt["cache_salt"] = salt
            params = self.sampling_params(request.max_new_tokens, request.stop, greedy, seed, exact_tokens)
            self.engine.add_request(request_id, prompt, params)
        except (ValueError, TypeError, RuntimeError, _vllm_error()) as err:
            log.warning("vLLM refused a turn of %s: %s", key, err)
            self._failed.append((key, EngineFailure("rejected", str(err)[:500])))
            return
        self._inflight[request_id] = (key, request.context)

    def step(self) -> list[tuple[Hashable, TurnOutput | EngineFailure]]:
        """One engine step; the turns that finished in it (and any refused at submission)."""
        done: list[tuple[Hashable, TurnOutput | EngineFailure]] = list(self._failed)
        self._failed.clear()
        if not self._inflight:
            return done
        for output in self.engine.step():
            if not output.finished or output.request_id not in self._inflight:
                continue
            key, context = self._inflight.pop(output.request_id)
            done.append((key, self._turn_output(output, context)))
        return done

    def _turn_output(self, output, context: list[int]) -> TurnOutput | EngineFailure:
        if list(output.prompt_token_ids) != context:
            # vLLM expanded a video to another token count than our sampler: the learner would score
            # other positions than were generated. Refuse the turn rather than train on it.
            return EngineFailure("prompt_mismatch", f"vLLM's prompt has {len(output.prompt_token_ids)} tokens, "
                                 f"the context {len(context)}")
        completion = output.outputs[0]
        token_ids = list(completion.token_ids)
        logprobs = None
        if completion.logprobs is not None:
            logprobs = [entry[token].logprob for token, entry in zip(token_ids, completion.logprobs)]
        self.stats.requests += 1
        self.stats.prompt_tokens += len(context)
        self.stats.cached_tokens += int(output.num_cached_tokens or 0)
        self.stats.generated_tokens += len(token_ids)
        return TurnOutput(token_ids, completion.text, logprobs)

    def abort_all(self) -> None:
        """Drop every request in flight (after an error in the driver)."""
        if self._inflight:
            self.engine.abort_request(list(self._inflight))
        self._inflight.clear()
        self._failed.clear()

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
    def update_weights(self, state_dict: dict) -> None:
        """Load `state_dict` (HF names, either the checkpoint's or transformers' module names) into the
        running engine, then reset the prefix cache. The engine must be idle."""
        if self._inflight:
            raise RuntimeError(f"update_weights with {len(self._inflight)} requests in flight")
        self.engine.collective_rpc("reload_weights", kwargs={"weights_iterator": list(state_dict.items()),
                                                             "is_checkpoint_format": True})
        self.clear_caches()
        self.weight_version += 1

    def clear_caches(self) -> None:
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
