"""The model side of `vloom serve`: a checked request -> prompt ids and images (the chat
template), and one worker thread that owns the model and runs `vloom.generate.sample`.

Batching policy: handler threads tokenize and decode images themselves, then queue a job;
the worker takes every job waiting when it is free (no added wait: requests that arrive
while a batch runs form the next one), up to `max_batch` prompts, and runs jobs with the same
max_tokens, stop strings and sampling settings in one `sample` call. A request's draws never
depend on what else was in flight: choice j of a request with seed s draws its uniforms from
(s, j), as `sample(seed=s)` gives prompt j; one-choice requests share a call through
sample's per-prompt `seeds` (each (s, 0)), an n > 1 request runs alone. So a request with
seed s and n = 1 gets what the vloom generator backend gives the same request. No seed:
one drawn at random per request. `sample` runs equal-length prompts together, so batching
across requests pays off when prompts match in length (one template over similar texts).
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from vloom.chat.conversation import ChatError
from vloom.chat.prompt import chat_prompt, model_template
from vloom.evaluate.harness import load_checkpoint, resolve_device
from vloom.evaluate.scoring import Images
from vloom.generate import Sample, sample
from vloom.media import ImageError
from vloom.serve.protocol import ApiError, ChatRequest, bad


@dataclass
class Job:
    """One request's prompt, made ready in the handler thread; the worker fills `future`."""

    ids: list[int]
    images: Images
    max_new_tokens: int
    req: ChatRequest
    seed: int  # the request's, or one drawn for it
    future: Future = field(default_factory=Future)

    @property
    def key(self) -> tuple:
        """Jobs with equal keys share one `sample` call (see the module docstring)."""
        r = self.req
        if r.temperature == 0 or r.top_k == 1:  # greedy: the sampling settings do not matter
            return ("greedy", self.max_new_tokens, r.stop)
        if r.n > 1:
            return ("alone", id(self))
        return ("sampled", self.max_new_tokens, r.stop, r.temperature, r.top_p, r.top_k)


class Engine:
    """A checkpoint loaded as `vloom eval` loads it, served by one worker thread."""

    def __init__(
        self,
        checkpoint: str | Path,
        *,
        name: str = "vloom",
        tokenizer: str | Path | None = None,
        device: str = "auto",
        template: str = "auto",
        max_batch: int = 32,
        max_new_tokens: int = 512,
        max_pending: int = 256,
        batch_wait_s: float = 0.0,
    ) -> None:
        self.device = resolve_device(device)
        self.model, self.tok = load_checkpoint(checkpoint, tokenizer, self.device)
        self.template = model_template(self.model, template)
        self.name, self.max_batch = name, max_batch
        self.max_new_tokens, self.max_pending = max_new_tokens, max_pending
        self.batch_wait_s = batch_wait_s
        self.context = self.model.lm.max_seq_len
        self.stats: Counter[str] = Counter()  # requests, batches (sample calls), errors
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._loop, name="vloom-serve-model", daemon=True)
        self._worker.start()

    # -- handler side ---------------------------------------------------------------------
    def prepare(self, req: ChatRequest) -> Job:
        """Tokenize the conversation and decode its images; a 400 for a prompt the context
        cannot hold with max_tokens new tokens (`context_length_exceeded`)."""
        if req.model is not None and req.model != self.name:
            raise ApiError(
                404,
                f"model: {req.model!r} is not served here (this server serves {self.name!r})",
                "model",
                "model_not_found",
                "not_found_error",
            )
        try:
            ids, images = chat_prompt(self.model, self.tok, self.template, req.turns)
        except (ChatError, ImageError) as e:
            raise bad("messages", str(e), e.reason) from None
        n, room = len(ids), self.context - len(ids)
        want = req.max_tokens
        if room < 1 or (want is not None and want > room):
            asked = f" + {want} max_tokens" if want is not None else ""
            raise ApiError(
                400,
                f"messages: this model's maximum context length is {self.context} tokens; the "
                f"messages take {n}{asked}",
                "messages",
                "context_length_exceeded",
            )
        new = min(want or self.max_new_tokens, room, self.context - 1)
        seed = req.seed if req.seed is not None else random.getrandbits(62)
        return Job(ids, images, new, req, seed)

    def submit(self, job: Job) -> Future:
        if self._queue.qsize() >= self.max_pending:
            raise ApiError(
                503,
                f"server busy: {self.max_pending} requests waiting",
                None,
                "overloaded",
                "server_error",
                {"Retry-After": "1"},
            )
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        """Stop the worker after the jobs already queued."""
        self._queue.put(None)
        self._worker.join(timeout=60)

    # -- worker side ----------------------------------------------------------------------
    def _loop(self) -> None:
        from vloom.train.denormal import flush_denormals  # as `vloom eval` runs on CPU

        with flush_denormals(self.device):
            while True:
                jobs = [self._queue.get()]
                until = time.monotonic() + self.batch_wait_s
                while jobs[-1] is not None and sum(j.req.n for j in jobs) < self.max_batch:
                    try:
                        jobs.append(self._queue.get(timeout=max(0.0, until - time.monotonic())))
                    except queue.Empty:
                        break
                stop = jobs[-1] is None
                groups: dict[tuple, list[Job]] = {}
                for j in jobs:
                    if j is not None:
                        groups.setdefault(j.key, []).append(j)
                for group in groups.values():
                    self._run(group)
                if stop:
                    return

    def _run(self, group: list[Job]) -> None:
        """One `sample` call for the group; each job's future gets its n Samples (or the
        error: the worker goes on)."""
        for j in group:
            j.future.set_running_or_notify_cancel()
        first = group[0].req
        self.stats.update(batches=1, requests=len(group))
        prompts = [j.ids for j in group for _ in range(j.req.n)]
        images = [j.images for j in group for _ in range(j.req.n)]  # one object: shared prefill
        try:
            out = sample(
                self.model,
                self.tok,
                prompts,
                images,
                self.device,
                max_new_tokens=group[0].max_new_tokens,
                temperature=first.temperature,
                top_k=first.top_k,
                top_p=first.top_p,
                seed=group[0].seed,
                stop=first.stop,
                batch_size=self.max_batch,
                seeds=[j.seed for j in group] if group[0].key[0] == "sampled" else None,
            )
        except Exception as e:  # the model failed on this group: its requests get a 500
            self.stats["errors"] += len(group)
            for j in group:
                j.future.set_exception(e)
            return
        at = 0
        for j in group:
            j.future.set_result(out[at : at + j.req.n])
            at += j.req.n


def usage(job: Job, samples: list[Sample]) -> tuple[int, int]:
    """(prompt tokens, completion tokens) as OpenAI counts them (the prompt once)."""
    return len(job.ids), sum(len(s.tokens) for s in samples)
