"""The generator interface: requests in, validated generations out, through one of several
backends (a vloom checkpoint, a local Hugging Face model, an OpenAI-compatible endpoint).

API (stable names; steps that use a model code against these):

    Request(prompt="..." | messages=(("system", s), ("user", u), ...), images=(png, ...),
            max_new_tokens=128, temperature=0.0, top_p=1.0, seed=0, stop=(), schema=None)
        Frozen. `messages` wins over `prompt` (a plain prompt is one user turn); the last turn
        must be the user's. `images` (encoded PNG/JPEG bytes) belong to the first user turn,
        before its text. `schema`: a pydantic model class; the text must then hold one JSON
        value that validates against it (the prompt asks for it: `schema_prompt(schema)`).
    Generation(text, value, error, cached, message)
        One per request. `error` is None or one of REASONS; `value` is the validated pydantic
        object (schema requests only); `message` says more about an error.
    BackendError(reason, message="", retryable=None)
        An Exception. A backend returns one in place of a request's text, or raises one for
        the whole batch (an endpoint that is down). retryable defaults to reason in RETRYABLE.
    Backend (protocol)
        identity() -> dict           what names the model for the cache (content hash of the
                                     checkpoint / HF dir, or url + model name), JSON-able
        generate(requests) -> list[str | BackendError]   one item per request, same order
        max_batch: int (optional)    most requests per generate call (default: the config's)
        from_config(cfg) (classmethod, optional)   how make_generator builds it
    Generator(backend, cache_dir=None, retries=3, backoff_s=0.5, concurrency=1,
              batch_size=16, invalid_retries=0, refusals=True)
        .generate(requests) -> list[Generation]   same order, never raises for one bad item
        .counts   Counter: "generated" (valid, from the backend), "cache_hit", and each final
                  error reason (one per request); "retry:<reason>" counts retried attempts
        .close() (also `with Generator(...) as g:`) closes the backend's connections
    GeneratorConfig (pydantic, for YAML: `{backend: vloom|hf|http|module:attr, path, url,
                  model, ...}`) and make_generator(spec, cache_dir) -> Generator.

Policies:
- Batching: pending requests go to the backend in batches of `batch_size` (capped by the
  backend's `max_batch`); `concurrency` batches run at once in a thread pool (for backends
  that release the GIL: torch ops, network waits).
- Retries: a retryable error (rate_limited, timeout, endpoint_down, and count_mismatch: a
  backend that returned the wrong number of items) is retried up to `retries` times after
  backoff_s * 2**attempt seconds. invalid_json, schema_mismatch and refused are retried
  `invalid_retries` times with another seed (seed + attempt * 1_000_003) and, when the
  request was greedy, temperature RETRY_TEMPERATURE (greedy would repeat itself); the valid
  answer is cached under the ORIGINAL request's key, so a rerun finds it.
- Refusals (`refusals=True`): a text that opens with an apology or a can't/won't
  ("I'm sorry", "I cannot", "As an AI", ... see REFUSAL) is `refused`; for a schema request
  only when it holds no JSON value (a JSON answer that says "sorry" inside is not a refusal).
  Cheap and conservative: a refusal phrased otherwise passes as text.
- Structured output: the first JSON object (or array) in the text, fences and chatter around
  it ignored; none -> invalid_json; fails the schema -> schema_mismatch.
- Cache (`cache_dir`, see vloom.generate.cache): key = sha256 of the backend's identity and the
  request (messages, image hashes, every sampling setting, the schema's JSON schema). Only
  valid generations are stored (JSON, atomic writes); a hit is re-validated and counted
  `cache_hit`, and the backend is not called for it. Identical requests in one call run once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vloom.generate.cache import GenerationCache

log = logging.getLogger(__name__)

REASONS = (
    "invalid_json",
    "schema_mismatch",
    "refused",
    "timeout",
    "context_overflow",
    "endpoint_down",
    "rate_limited",
    "count_mismatch",
    "backend_error",
)
RETRYABLE = frozenset({"rate_limited", "timeout", "endpoint_down"})
RESEEDABLE = frozenset({"invalid_json", "schema_mismatch", "refused"})
RETRY_TEMPERATURE = 0.7
ROLES = ("system", "user", "assistant")
CACHE_VERSION = 1  # bump when a backend's output for the same key would change

REFUSAL = re.compile(
    r"^\W*(?:i'?m sorry|i am sorry|sorry,|i apologi[sz]e|i cannot|i can'?t|i can not|"
    r"i won'?t|i will not|i'?m unable|i am unable|i'?m not able|i am not able|as an ai)(?!\w)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Request:
    """One generation request (see the module docstring)."""

    prompt: str = ""
    messages: tuple[tuple[str, str], ...] = ()
    images: tuple[bytes, ...] = ()
    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    schema: type[BaseModel] | None = None

    def __post_init__(self) -> None:
        # lists from callers become tuples: the request is hashable and its key stable
        object.__setattr__(self, "messages", tuple((str(r), str(t)) for r, t in self.messages))
        object.__setattr__(self, "images", tuple(self.images))
        object.__setattr__(self, "stop", tuple(self.stop))
        turns = self.turns
        if not turns or not any(t for _, t in turns) and not self.images:
            raise ValueError("Request: empty prompt (give prompt= or messages=)")
        for i, (role, _) in enumerate(turns):
            if role not in ROLES:
                raise ValueError(f"Request.messages[{i}]: role {role!r} is not one of {ROLES}")
        if turns[-1][0] != "user":
            raise ValueError("Request.messages: the last turn must be the user's")
        if self.max_new_tokens < 1 or self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(
                "Request: need max_new_tokens >= 1, temperature >= 0, 0 < top_p <= 1; got "
                f"{self.max_new_tokens}, {self.temperature}, {self.top_p}"
            )
        if self.schema is not None and not (
            isinstance(self.schema, type) and issubclass(self.schema, BaseModel)
        ):
            raise ValueError(f"Request.schema: {self.schema!r} is not a pydantic model class")

    @property
    def turns(self) -> tuple[tuple[str, str], ...]:
        """The conversation: `messages`, or the plain prompt as one user turn."""
        return self.messages or (("user", self.prompt),)

    def key_fields(self) -> dict[str, Any]:
        """Everything that decides the output, JSON-able (images by content hash). A greedy
        request's seed and top_p decide nothing, so they are left out: greedy requests that
        differ only there share one key (one generation, one cache entry)."""
        greedy = self.temperature == 0
        return {
            "turns": [list(t) for t in self.turns],
            "images": [hashlib.sha256(b).hexdigest() for b in self.images],
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": None if greedy else self.top_p,
            "seed": None if greedy else self.seed,
            "stop": list(self.stop),
            "schema": self.schema.model_json_schema() if self.schema else None,
        }


@dataclass(frozen=True)
class Generation:
    """One request's outcome: valid text (and value), or an error reason."""

    text: str | None
    value: BaseModel | None = None
    error: str | None = None
    cached: bool = False
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


class BackendError(Exception):
    """A request (or a whole batch) that failed in the backend, with its reason slug."""

    def __init__(self, reason: str, message: str = "", retryable: bool | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"BackendError: unknown reason {reason!r} (one of {REASONS})")
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason, self.message = reason, message
        self.retryable = reason in RETRYABLE if retryable is None else retryable


@runtime_checkable
class Backend(Protocol):
    def identity(self) -> dict[str, Any]: ...

    def generate(self, requests: list[Request]) -> list[str | BackendError]: ...


class GeneratorConfig(BaseModel):
    """A generator as a YAML config names it; make_generator builds it."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field(description="vloom, hf, http, or a module:attr Backend class")
    path: str | None = Field(None, description="vloom checkpoint dir / Hugging Face model dir")
    tokenizer: str | None = Field(None, description="vloom: tokenizer.json (default: ckpt's)")
    template: str = Field("auto", description="chat template: auto, vloom or hf")
    device: str = Field("auto", description="vloom/hf: auto, cpu, cuda, cuda:N")
    threads: int = Field(
        1,
        ge=0,
        description="vloom/hf on the CPU: torch threads while generating (0: torch's own "
        "setting); one decodes a small model fastest on a shared machine",
    )
    url: str | None = Field(None, description="http: the endpoint's base URL (.../v1)")
    model: str | None = Field(None, description="http: the model name the endpoint serves")
    timeout_s: float = Field(120.0, gt=0, description="http: seconds per request")
    batch_size: int = Field(16, ge=1, description="requests per backend call")
    concurrency: int = Field(1, ge=1, description="backend calls in flight at once")
    retries: int = Field(3, ge=0, description="retries of rate_limited/timeout/endpoint_down")
    backoff_s: float = Field(0.5, ge=0, description="first retry's wait; doubles each retry")
    invalid_retries: int = Field(0, ge=0, description="reseeded retries of invalid/refused")
    refusals: bool = Field(True, description="count refusals (REFUSAL) as errors")
    options: dict[str, Any] = Field(default_factory=dict, description="backend-specific extras")


BACKENDS = {
    "vloom": "vloom.generate.backends.vloom:VloomBackend",
    "hf": "vloom.generate.backends.hf:HFBackend",
    "http": "vloom.generate.backends.http:HttpBackend",
}


def make_backend(cfg: GeneratorConfig) -> Backend:
    """The backend `cfg.backend` names, built by its `from_config(cfg)`."""
    from vloom.lazy import registered_or_plugin

    spec = BACKENDS.get(cfg.backend, cfg.backend)
    cls = registered_or_plugin(spec, {}, "generator backend")
    return cls.from_config(cfg)


def make_generator(
    spec: dict[str, Any] | GeneratorConfig, cache_dir: str | Path | None = None
) -> Generator:
    """A Generator from a config section (`{backend: vloom, path: CKPT, ...}`)."""
    cfg = spec if isinstance(spec, GeneratorConfig) else GeneratorConfig.model_validate(spec)
    return Generator(
        make_backend(cfg),
        cache_dir=cache_dir,
        retries=cfg.retries,
        backoff_s=cfg.backoff_s,
        concurrency=cfg.concurrency,
        batch_size=cfg.batch_size,
        invalid_retries=cfg.invalid_retries,
        refusals=cfg.refusals,
    )


def schema_prompt(schema: type[BaseModel]) -> str:
    """A line asking for JSON that fits `schema` (callers append it to their prompt)."""
    js = json.dumps(schema.model_json_schema(), separators=(",", ":"))
    return f"Answer with one JSON object only, matching this JSON schema: {js}"


def extract_json(text: str) -> Any:
    """The first JSON object or array in `text` (prose and ``` fences around it ignored);
    raises ValueError when there is none."""
    dec = json.JSONDecoder()
    for m in re.finditer(r"[\[{]", text):
        try:
            return dec.raw_decode(text, m.start())[0]
        except json.JSONDecodeError:
            continue
    raise ValueError("no JSON object in the text")


def request_key(identity: dict[str, Any], req: Request) -> str:
    """The cache key: sha256 over the backend identity and the request's key fields."""
    blob = {"v": CACHE_VERSION, "backend": identity, "request": req.key_fields()}
    data = json.dumps(blob, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()


@dataclass
class _Item:
    """One distinct pending request and the positions in the caller's list it answers."""

    key: str
    req: Request
    where: list[int] = field(default_factory=list)


class Generator:
    """Batched, concurrent, retried, validated and cached generation (module docstring)."""

    def __init__(
        self,
        backend: Backend,
        cache_dir: str | Path | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        concurrency: int = 1,
        batch_size: int = 16,
        invalid_retries: int = 0,
        refusals: bool = True,
    ) -> None:
        if retries < 0 or backoff_s < 0 or concurrency < 1 or batch_size < 1:
            raise ValueError("Generator: need retries >= 0, backoff_s >= 0, concurrency >= 1")
        self.backend = backend
        self.cache = GenerationCache(cache_dir) if cache_dir is not None else None
        self.retries, self.backoff_s, self.concurrency = retries, backoff_s, concurrency
        self.batch_size = min(batch_size, int(getattr(backend, "max_batch", batch_size)))
        self.invalid_retries, self.refusals = invalid_retries, refusals
        self.counts: Counter[str] = Counter()
        self._identity = backend.identity()
        self._lock = threading.Lock()

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        out: list[Generation | None] = [None] * len(requests)
        items: dict[str, _Item] = {}
        for i, req in enumerate(requests):
            key = request_key(self._identity, req)
            hit = self._cached(key, req)
            if hit is not None:
                out[i] = hit
                self.counts["cache_hit"] += 1
                continue
            items.setdefault(key, _Item(key, req)).where.append(i)
        todo = list(items.values())
        batches = [todo[s : s + self.batch_size] for s in range(0, len(todo), self.batch_size)]
        if self.concurrency > 1 and len(batches) > 1:
            with ThreadPoolExecutor(self.concurrency) as pool:
                done = list(pool.map(self._run_batch, batches))
        else:
            done = [self._run_batch(b) for b in batches]
        for batch, gens in zip(batches, done, strict=True):
            for it, g in zip(batch, gens, strict=True):
                for i in it.where:
                    out[i] = g
                with self._lock:
                    self.counts["generated" if g.ok else g.error] += len(it.where)
        assert all(g is not None for g in out)
        return out  # type: ignore[return-value]

    def close(self) -> None:
        """Release the backend's resources (an http backend's connections), if it has any."""
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cached(self, key: str, req: Request) -> Generation | None:
        if self.cache is None:
            return None
        rec = self.cache.get(key)
        if rec is None or not isinstance(rec.get("text"), str):
            return None
        g = self.check(rec["text"], req)
        return replace(g, cached=True) if g.ok else None  # a stale entry is regenerated

    def _run_batch(self, batch: list[_Item]) -> list[Generation]:
        """The batch's generations after every allowed retry."""
        result: dict[int, Generation] = {}
        pending = list(range(len(batch)))
        tries = dict.fromkeys(pending, 0)  # retries of transient errors
        reseeds = dict.fromkeys(pending, 0)  # reseeded retries of invalid answers
        attempt = 0
        while pending:
            reqs = [self._variant(batch[j].req, reseeds[j]) for j in pending]
            got = self._call(reqs)
            again: list[int] = []
            for j, (g, retryable) in zip(pending, got, strict=True):
                result[j] = g
                if g.ok and self.cache is not None:
                    self.cache.put(batch[j].key, {"text": g.text, "backend": self._identity})
                if g.ok:
                    continue
                if g.error in RESEEDABLE and reseeds[j] < self.invalid_retries:
                    reseeds[j] += 1
                elif retryable and tries[j] < self.retries:
                    tries[j] += 1
                else:
                    continue
                again.append(j)
                with self._lock:
                    self.counts[f"retry:{g.error}"] += 1
            if again and any(result[j].error not in RESEEDABLE for j in again):
                time.sleep(self.backoff_s * 2**attempt)
                attempt += 1
            pending = again
        return [result[j] for j in range(len(batch))]

    @staticmethod
    def _variant(req: Request, reseed: int) -> Request:
        """The request as retry `reseed` sends it: another seed, and sampled if it was greedy."""
        if reseed == 0:
            return req
        return replace(
            req,
            seed=req.seed + reseed * 1_000_003,
            temperature=req.temperature or RETRY_TEMPERATURE,
        )

    def _call(self, reqs: list[Request]) -> list[tuple[Generation, bool]]:
        """One backend call, every failure mode turned into per-request (Generation,
        retryable) pairs."""
        try:
            raw = self.backend.generate(reqs)
        except BackendError as e:
            return [_failed(e) for _ in reqs]
        except Exception as e:  # a backend bug must not end the run: named, counted
            log.warning("generator backend failed on a batch of %d: %r", len(reqs), e)
            return [(Generation(None, error="backend_error", message=repr(e)), False)] * len(reqs)
        if not isinstance(raw, list) or len(raw) != len(reqs):
            n = len(raw) if isinstance(raw, list) else type(raw).__name__
            msg = f"backend returned {n} items for {len(reqs)} requests"
            return [(Generation(None, error="count_mismatch", message=msg), True)] * len(reqs)
        return [
            _failed(r) if isinstance(r, BackendError) else (self.check(r, q), False)
            for r, q in zip(raw, reqs, strict=True)
        ]

    def check(self, text: Any, req: Request) -> Generation:
        """A backend's text for `req` as a Generation: refused / invalid_json /
        schema_mismatch, or valid (with the validated value for a schema request)."""
        if not isinstance(text, str):
            return Generation(None, error="backend_error", message=f"text is {type(text)}")
        if req.schema is None:
            if self.refusals and REFUSAL.match(text):
                return Generation(text, error="refused", message=text[:80])
            return Generation(text)
        try:
            obj = extract_json(text)
        except ValueError:
            reason = "refused" if self.refusals and REFUSAL.match(text) else "invalid_json"
            return Generation(text, error=reason, message=text[:80])
        try:
            return Generation(text, value=req.schema.model_validate(obj))
        except ValidationError as e:
            return Generation(text, error="schema_mismatch", message=str(e).splitlines()[0])


def _failed(e: BackendError) -> tuple[Generation, bool]:
    return Generation(None, error=e.reason, message=e.message), e.retryable
