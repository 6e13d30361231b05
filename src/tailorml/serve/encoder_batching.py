"""Dynamic batching for encoders: embeddings and classification requests share forward passes.

One ``EncoderBatcher`` per loaded base runs a loop on its own thread. A
request (the token ids of its inputs, its adapter, and whether it wants
pooled hidden states or class probabilities) joins a queue; the loop
takes the requests that are waiting, lingering up to ``max_wait_ms`` for
more once the first arrives (the model is idle then, so a short wait
costs little and fills the batch), up to ``max_rows`` inputs taken in
turns between tenants (so one tenant's backlog does not make another's
single request wait behind it), and runs them together:

- rows of all requests are sorted by length and cut into forward passes of
  at most ``max_rows`` rows and ``max_tokens`` padded tokens, so padding
  stays small and one huge request does not make a huge tensor;
- rows carry their own LoRA adapter: one forward pass serves several
  tenants' fine-tunes through peft's mixed-batch forward
  (``adapter_names``, ``"__base__"`` for the bare base), which applies
  each adapter's low-rank delta, and its own classification head
  (``modules_to_save``), to its own rows; a batch of one adapter uses the
  plain active-adapter forward, which is a little faster;
- adapters load on first use and are pinned while their rows run, so
  loading one never evicts another in the same batch; a broken adapter
  fails its own request only.

Why hand-written: a batching queue in front of a model is what Triton
("dynamic batcher", ``max_queue_delay``), TEI and Ray Serve
(``@serve.batch``) do, but none of them runs in-process beside the
decoder's continuous batch, shares its model lock, or groups peft
adapters per row; what runs the model (transformers, SDPA, peft's LoRA
kernels) is theirs.

Results equal those of running each request alone, up to float rounding
(a test checks this with mixed adapters); padded positions are masked.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tailorml.serve.bases import AdapterRequest
from tailorml.serve.loading import Weights

IDLE_SECONDS = 2.0  # the loop thread exits after this long with no work
BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


@dataclass(frozen=True)
class EncoderStats:
    """What the batcher has done since it was made (for metrics and tests)."""

    requests: int  # requests answered
    forwards: int  # forward passes run
    rows: int  # inputs encoded
    waiting: int  # requests queued now


@dataclass(eq=False)
class _Job:
    batch: list[list[int]]
    adapter: AdapterRequest | None
    hidden: bool  # pooled hidden states (embeddings), else class probabilities
    tenant: str | None = None
    types: list[list[int]] | None = None  # token type ids per input (text pairs)
    results: list[list[float]] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=time.monotonic)

    @property
    def adapter_name(self) -> str:
        return self.adapter.name if self.adapter is not None else BASE


class EncoderBatcher:
    """Runs every embeddings and classification request on one base in shared batches."""

    def __init__(
        self,
        weights: Weights,
        lock: threading.Lock,
        *,
        max_rows: int = 64,
        max_tokens: int = 16384,
        max_wait_ms: float = 2.0,
    ) -> None:
        self.weights = weights
        self.max_rows = max_rows
        self.max_tokens = max_tokens
        self.max_wait = max_wait_ms / 1000
        self._model_lock = lock  # shared with every other forward pass on this base
        self._cv = threading.Condition()
        self._waiting: deque[_Job] = deque()
        self._thread: threading.Thread | None = None
        self._requests = self._forwards = self._rows = 0

    def stats(self) -> EncoderStats:
        with self._cv:
            return EncoderStats(self._requests, self._forwards, self._rows, len(self._waiting))

    def run(
        self,
        batch: list[list[int]],
        adapter: AdapterRequest | None,
        *,
        hidden: bool,
        tenant: str | None = None,
        types: list[list[int]] | None = None,
    ) -> list[list[float]]:
        """Encode ``batch`` (token ids per input, and their token types where given) with
        ``adapter``; blocks until answered."""
        if not batch:
            return []
        job = _Job(batch, adapter, hidden, tenant, types)
        with self._cv:
            self._waiting.append(job)
            if self._thread is None:
                # Not a daemon: at exit Python waits for the loop (it ends once idle for
                # IDLE_SECONDS) instead of killing it inside a forward pass, which aborts
                # the process ("terminate called without an active exception").
                self._thread = threading.Thread(target=self._loop, name="tailorml-encode")
                self._thread.start()
            self._cv.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.results

    # -- the loop's side -------------------------------------------------------

    def _loop(self) -> None:
        while True:
            jobs = self._next_jobs()
            if jobs is None:
                return
            try:
                with self._model_lock:
                    self._run(jobs)
            except Exception as exc:  # a failed forward fails the requests it carried
                for job in jobs:
                    if not job.done.is_set():
                        job.error = exc
            finally:
                with self._cv:
                    self._requests += len(jobs)
                for job in jobs:
                    job.done.set()

    def _next_jobs(self) -> list[_Job] | None:
        """The requests of the next batch (None when idle long enough to stop the thread)."""
        with self._cv:
            idle_since = time.monotonic()
            while not self._waiting:
                left = IDLE_SECONDS - (time.monotonic() - idle_since)
                if left <= 0:
                    self._thread = None
                    return None
                self._cv.wait(left)
            # Linger for more requests, counted from when the first one arrived: under
            # load the queue filled while the model was busy and this does not wait.
            deadline = self._waiting[0].arrived + self.max_wait
            while _rows(self._waiting) < self.max_rows and time.monotonic() < deadline:
                self._cv.wait(max(deadline - time.monotonic(), 0.0))
            jobs = _fair_take(self._waiting, self.max_rows)
            taken = set(map(id, jobs))
            self._waiting = deque(job for job in self._waiting if id(job) not in taken)
            return jobs

    def _run(self, jobs: list[_Job]) -> None:
        weights = self.weights
        pinned: list[str] = []
        live = []
        try:
            for job in jobs:
                if job.adapter is None:
                    live.append(job)
                    continue
                try:
                    weights.ensure(job.adapter)  # loads on first use, no restart
                except Exception as exc:  # a broken adapter fails its own request only
                    job.error = exc
                    job.done.set()
                    continue
                weights.pin(job.adapter.name)
                pinned.append(job.adapter.name)
                live.append(job)
            for hidden in (True, False):
                group = [job for job in live if job.hidden is hidden]
                if group:
                    self._encode(group, hidden)
        finally:
            for name in pinned:
                weights.unpin(name)

    def _encode(self, jobs: list[_Job], hidden: bool) -> None:
        import torch

        weights = self.weights
        for job in jobs:
            job.results = [[] for _ in job.batch]
        rows = [(job, i) for job in jobs for i in range(len(job.batch))]
        # Sorting by length keeps padding (wasted compute) small in each pass.
        rows.sort(key=lambda r: len(r[0].batch[r[1]]))
        pad = getattr(weights.model.config, "pad_token_id", None) or 0
        # Only hidden states are wanted; for a causal LM skip all but one
        # position of the vocabulary projection.
        extra = {"logits_to_keep": 1} if hidden and weights.accepts_logits_to_keep else {}
        for chunk in _chunks(rows, self.max_rows, self.max_tokens):
            width = max(len(job.batch[i]) for job, i in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, (job, i) in enumerate(chunk):
                ids[r, : len(job.batch[i])] = torch.tensor(job.batch[i])
                mask[r, : len(job.batch[i])] = 1
            ids, mask = ids.to(weights.device), mask.to(weights.device)
            names = [job.adapter_name for job, _ in chunk]
            kwargs: dict[str, Any] = {}
            if any(job.types is not None for job, _ in chunk):
                # Text pairs (rerank on a cross-encoder): segment ids; single texts are all 0.
                types = torch.zeros_like(ids)
                for r, (job, i) in enumerate(chunk):
                    if job.types is not None:
                        types[r, : len(job.types[i])] = torch.tensor(job.types[i])
                kwargs["token_type_ids"] = types
            if len(set(names)) == 1:
                weights.activate(chunk[0][0].adapter)
            else:
                missing = set(names) - {BASE} - set(weights.resident)
                if missing:  # never answer from the bare base instead
                    raise RuntimeError(f"adapters {sorted(missing)} are not loaded on this base")
                weights.use_mixed()
                kwargs["adapter_names"] = names
            with torch.inference_mode():
                out = weights.model(
                    input_ids=ids, attention_mask=mask, output_hidden_states=hidden,
                    **extra, **kwargs,
                )  # fmt: skip
                if hidden:
                    states = out.hidden_states[-1].float()
                    keep = mask.unsqueeze(-1).to(states.dtype)
                    pooled = (states * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
                    vectors = torch.nn.functional.normalize(pooled, p=2, dim=-1)
                elif out.logits.shape[-1] == 1:
                    # One logit is a score, not a distribution (a softmax of it is always 1).
                    vectors = torch.sigmoid(out.logits.float())
                else:
                    vectors = torch.softmax(out.logits.float(), dim=-1)
            values = vectors.cpu().tolist()
            for r, (job, i) in enumerate(chunk):
                job.results[i] = values[r]
            with self._cv:
                self._forwards += 1
                self._rows += len(chunk)


def _rows(jobs: deque[_Job]) -> int:
    return sum(len(job.batch) for job in jobs)


def _fair_take(waiting: deque[_Job], max_rows: int) -> list[_Job]:
    """Requests for one batch of at most ``max_rows`` inputs, taking turns between tenants.

    Each tenant's requests keep their order; tenants take one request each in turn
    (in the order of their earliest), so a tenant with a backlog shares the batch
    with one that sent a single request instead of filling it. The first request
    is always taken, however many inputs it has.
    """
    queues: dict[str | None, deque[_Job]] = {}
    for job in waiting:
        queues.setdefault(job.tenant, deque()).append(job)
    jobs: list[_Job] = []
    rows = 0
    while queues:
        for tenant in list(queues):
            line = queues[tenant]
            if jobs and rows + len(line[0].batch) > max_rows:
                del queues[tenant]  # its next request waits for the next batch
                continue
            job = line.popleft()
            jobs.append(job)
            rows += len(job.batch)
            if not line:
                del queues[tenant]
    return jobs


def _chunks(
    rows: list[tuple[_Job, int]], max_rows: int, max_tokens: int
) -> list[list[tuple[_Job, int]]]:
    """Consecutive runs of ``rows`` (sorted by length) within both limits (padded tokens)."""
    chunks: list[list[tuple[_Job, int]]] = []
    current: list[tuple[_Job, int]] = []
    for row in rows:
        width = len(row[0].batch[row[1]])  # the longest so far, as rows are sorted
        if current and (len(current) >= max_rows or (len(current) + 1) * width > max_tokens):
            chunks.append(current)
            current = []
        current.append(row)
    if current:
        chunks.append(current)
    return chunks
