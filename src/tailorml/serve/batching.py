"""Continuous batching for one base model: requests join and leave the running batch between steps.

One ``BatchScheduler`` per loaded decoder runs a loop on its own thread.
Each turn of the loop:

1. drops sequences whose client went away (a closed stream), freeing
   their slots at once;
2. admits waiting requests while there is a free slot and the KV cache
   stays under its budget (``max_batch`` slots, ``kv_cache_bytes``),
   taking turns between tenants: the next is the earliest request of the
   tenant with the fewest sequences running;
3. runs up to ``prefill_chunk`` prompt tokens of newly admitted requests,
   one sequence at a time, so a long prompt is split over several turns
   and never stalls the running batch for more than one chunk;
4. runs one decoding step for every running sequence in one forward pass,
   samples each row with its own parameters and RNG, and hands each
   sequence its token.

Rows carry their own LoRA adapter: peft's mixed-batch forward
(``adapter_names``, one name per row, ``"__base__"`` for the bare base)
shares the base matmuls and applies each adapter's low-rank delta to the
rows that asked for it, grouped by adapter. Adapters a running sequence
uses are pinned, so loading another never evicts them mid-answer.

Why not transformers' own continuous batching (``generate_batch``): it
runs on its paged-attention kernels with one generation config for the
whole batch and no per-row adapters; serving needs per-request sampling,
stop ids, adapters and abort, so the loop is written here and only the
cache layout (``kvcache.py``) is ours; the model, attention kernels (SDPA),
sampling warpers and LoRA kernels are transformers' and peft's.

Greedy answers are the same tokens the sequential path gives (a test
compares them token for token); only the arithmetic grouping differs.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tailorml.serve.backend import GenerationRequest, GenerationStep
from tailorml.serve.grammar import Matcher
from tailorml.serve.kvcache import SlotKVCache, round_up
from tailorml.serve.loading import Weights
from tailorml.serve.sampling import TokenPicker

# Decoder families whose attention reads its keys through ``cache.update`` and takes a
# ready 4D mask and explicit positions, as the slot cache needs. Others run sequentially.
BATCHABLE = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "granite", "olmo", "olmo2"}
)
IDLE_SECONDS = 2.0  # the loop thread exits (and frees the cache) after this long with no work
BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


@dataclass(frozen=True)
class BatchStats:
    """What the scheduler is doing now (for metrics and admission)."""

    running: int
    waiting: int
    kv_bytes: int
    kv_budget_bytes: int
    forwards: int  # decoding passes run so far
    rows: int  # sequences those passes carried


@dataclass(eq=False)
class _Sequence:
    request: GenerationRequest
    out: queue.SimpleQueue[GenerationStep | BaseException] = field(
        default_factory=queue.SimpleQueue
    )
    cached: int = 0  # prompt tokens already written to the cache
    generated: int = 0
    last: int = -1  # the token to feed at the next decode step
    slot: int = -1
    abandoned: bool = False
    picker: TokenPicker | None = None

    @property
    def need(self) -> int:
        """Cache positions this sequence can come to occupy."""
        return len(self.request.prompt_ids) + self.request.params.max_tokens

    @property
    def position(self) -> int:
        """Where the next decode step writes (prompt + answer tokens so far, minus the last)."""
        return len(self.request.prompt_ids) + self.generated - 1


class BatchScheduler:
    """Runs every generation on one base model in a shared, changing batch (thread-safe)."""

    def __init__(
        self,
        weights: Weights,
        lock: threading.Lock,
        *,
        max_batch: int = 32,
        kv_cache_bytes: int = 2 << 30,
        prefill_chunk: int = 512,
    ) -> None:
        import torch

        self.weights = weights
        self.max_batch = max_batch
        self.kv_cache_bytes = kv_cache_bytes
        self.prefill_chunk = prefill_chunk
        self._model_lock = lock  # shared with every other forward pass on this base
        dtype = next(weights.model.parameters()).dtype
        self._cache = SlotKVCache.for_model(_text_config(weights.model), dtype, weights.device)
        self._mask_min = torch.finfo(dtype).min
        self._dtype = dtype
        self._cv = threading.Condition()
        self._waiting: deque[_Sequence] = deque()
        self._slots: list[_Sequence] = []  # decoding first, then those still in prefill
        self._thread: threading.Thread | None = None
        self._forwards = self._rows = 0

    @staticmethod
    def supports(weights: Weights) -> bool:
        """Whether this model's attention fits the slot cache."""
        config = _text_config(weights.model)
        return getattr(config, "model_type", None) in BATCHABLE and weights.accepts_logits_to_keep

    def stats(self) -> BatchStats:
        with self._cv:
            return BatchStats(
                len(self._slots), len(self._waiting), self._cache.allocated_bytes,
                self.kv_cache_bytes, self._forwards, self._rows,
            )  # fmt: skip

    # -- the caller's side -----------------------------------------------------

    def generate(
        self, request: GenerationRequest, matcher: Matcher | None = None
    ) -> Iterator[GenerationStep]:
        """Queue ``request`` and stream its steps; closing the stream frees its slot.

        ``matcher`` constrains the answer to its grammar (``response_format``)."""
        picker = TokenPicker(request.params, self.weights.device, matcher)
        seq = _Sequence(request, picker=picker)
        with self._cv:
            self._waiting.append(seq)
            if self._thread is None:
                # Not a daemon: at exit Python waits for the loop (it ends once idle for
                # IDLE_SECONDS) instead of killing it inside a forward pass, which aborts
                # the process ("terminate called without an active exception").
                self._thread = threading.Thread(target=self._loop, name="tailorml-batch")
                self._thread.start()
            self._cv.notify()
        return self._stream(seq)

    def _stream(self, seq: _Sequence) -> Iterator[GenerationStep]:
        try:
            while True:
                item = seq.out.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            with self._cv:
                seq.abandoned = True  # no-op for a finished sequence
                self._cv.notify()

    # -- the loop's side -------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cv:
                idle_since = time.monotonic()
                while not self._waiting and not self._slots:
                    left = IDLE_SECONDS - (time.monotonic() - idle_since)
                    if left <= 0:
                        self._thread = None
                        self._cache.release()
                        return
                    self._cv.wait(left)
            # Lock order: the model's lock, then the queue's (callers take only the latter).
            with self._model_lock:
                with self._cv:
                    self._drop_abandoned()
                    self._admit()
                    decoding = [s for s in self._slots if _decoding(s)]
                    filling = self._slots[len(decoding) :]
                try:
                    self.weights.use_mixed()
                    if filling:
                        self._prefill(filling)
                    if decoding:
                        self._decode(decoding)
                except Exception as exc:  # a failed forward fails the requests it carried
                    with self._cv:
                        for seq in decoding + filling:
                            seq.out.put(exc)
                            self._free(seq)

    def _drop_abandoned(self) -> None:
        for seq in [s for s in self._slots if s.abandoned]:
            self._free(seq)
        if any(s.abandoned for s in self._waiting):
            self._waiting = deque(s for s in self._waiting if not s.abandoned)

    def _admit(self) -> None:
        cache = self._cache
        if not self._slots:
            cache.release()  # start each busy period small; a long request does not stay
        running = Counter(s.request.tenant for s in self._slots)
        while self._waiting and len(self._slots) < self.max_batch:
            # Fair between tenants: the tenant with the fewest rows running goes first
            # (min keeps the earliest of equals), so one tenant's backlog cannot fill
            # every slot while another's request waits.
            seq = min(self._waiting, key=lambda s: running[s.request.tenant])
            rows = len(self._slots) + 1
            slots = max(cache.slots, min(round_up(rows, 8), self.max_batch))
            capacity = max(cache.capacity, round_up(seq.need, 256))
            if self._slots and slots * capacity * cache.bytes_per_token > self.kv_cache_bytes:
                break  # it waits for a running sequence to finish (one always runs)
            self._waiting.remove(seq)
            adapter = seq.request.adapter
            if adapter is not None:
                try:
                    self.weights.ensure(adapter)  # loads on first use, no restart
                except Exception as exc:  # a broken adapter fails its own request only
                    seq.out.put(exc)
                    continue
                self.weights.pin(adapter.name)
            cache.reserve(slots, capacity)
            seq.slot = len(self._slots)
            self._slots.append(seq)
            running[seq.request.tenant] += 1

    def _free(self, seq: _Sequence) -> None:
        """Take ``seq`` out of its slot, keeping the slots compact with the decoding ones first.

        A decoding hole is filled by the last decoding sequence (one copy); the sequences
        still in prefill, at most a few, then move down one slot each."""
        if seq.slot < 0:
            return
        if seq.request.adapter is not None:
            self.weights.unpin(seq.request.adapter.name)
        hole, seq.slot = seq.slot, -1
        decoding = sum(1 for s in self._slots if s is not seq and _decoding(s))
        if _decoding(seq) and hole < decoding:
            last = self._slots[decoding]  # the last decoding sequence, after the hole
            self._relocate(last, hole)
            self._slots[hole] = last
            hole = decoding
        self._slots.pop(hole)
        for i in range(hole, len(self._slots)):
            self._relocate(self._slots[i], i)

    def _relocate(self, seq: _Sequence, slot: int) -> None:
        written = seq.cached + max(seq.generated - 1, 0)
        self._cache.move(seq.slot, slot, written)
        seq.slot = slot

    def _forward(self, rows: list[_Sequence], input_ids: Any, positions: list[int]) -> Any:
        import torch

        q_len = input_ids.shape[1]
        start = rows[0].slot
        self._cache.begin(start, positions, q_len)
        kv_len = max(positions) + q_len
        keys = torch.arange(kv_len, device=self.weights.device)
        pos = torch.tensor(positions, device=self.weights.device)[:, None] + torch.arange(
            q_len, device=self.weights.device
        )
        # Row r's query at position p sees keys 0..p of its own slot, nothing else.
        visible = keys[None, None, :] <= pos[:, :, None]
        mask = torch.zeros(visible.shape, dtype=self._dtype, device=self.weights.device)
        mask.masked_fill_(~visible, self._mask_min)
        kwargs: dict[str, Any] = {}
        names = [s.request.adapter.name if s.request.adapter else BASE for s in rows]
        missing = {n for n in names if n != BASE} - set(self.weights.resident)
        if missing:  # never answer from the bare base instead
            raise RuntimeError(f"adapters {sorted(missing)} are not loaded on this base")
        if self.weights.is_peft:
            kwargs["adapter_names"] = names
        with torch.inference_mode():
            out = self.weights.model(
                input_ids=input_ids,
                attention_mask=mask[:, None],
                position_ids=pos,
                cache=self._cache,
                use_cache=True,
                logits_to_keep=1,
                **kwargs,
            )
        return out.logits[:, -1, :].float()

    def _prefill(self, filling: list[_Sequence]) -> None:
        import torch

        budget = self.prefill_chunk
        for seq in filling:
            if budget <= 0:
                return
            prompt = seq.request.prompt_ids
            chunk = prompt[seq.cached : seq.cached + budget]
            ids = torch.tensor([list(chunk)], device=self.weights.device)
            scores = self._forward([seq], ids, [seq.cached])
            seq.cached += len(chunk)
            budget -= len(chunk)
            if seq.cached == len(prompt):
                self._emit([seq], scores)
            else:
                return  # the rest of this prompt goes in the next turn, before any later one

    def _decode(self, decoding: list[_Sequence]) -> None:
        import torch

        # Freeing a sequence that finished its prefill this turn may have moved rows.
        decoding = sorted(decoding, key=lambda s: s.slot)
        ids = torch.tensor([[s.last] for s in decoding], device=self.weights.device)
        scores = self._forward(decoding, ids, [s.position for s in decoding])
        with self._cv:
            self._forwards += 1
            self._rows += len(decoding)
        self._emit(decoding, scores)

    def _emit(self, rows: list[_Sequence], scores: Any) -> None:
        """Pick each row's next token, hand it to its stream, and free finished rows."""
        greedy = scores.argmax(dim=-1).tolist()
        finished = []
        for i, seq in enumerate(rows):
            picker = seq.picker
            assert picker is not None
            token = greedy[i] if picker.greedy else picker.pick(scores[i : i + 1])
            seq.generated += 1
            seq.last = token
            step = picker.step(token, seq.generated)
            seq.out.put(step)
            if step.finish_reason is not None:
                finished.append(seq)
        if finished:
            with self._cv:
                # Highest slot first, so freeing one does not move another still to free.
                for seq in sorted(finished, key=lambda s: -s.slot):
                    self._free(seq)


def _decoding(seq: _Sequence) -> bool:
    return seq.cached == len(seq.request.prompt_ids)


def _text_config(model: Any) -> Any:
    config = model.config
    return getattr(config, "text_config", None) or config
