"""A KV cache with one slot per running sequence, so that many sequences decode in one pass.

transformers' own caches hold one length for the whole batch (``DynamicCache``
grows every row together, ``StaticCache`` writes every row at one shared
position), which suits ``generate`` on a batch that starts and ends
together. Continuous batching needs rows that start at different times and
sit at different lengths, with rows leaving and joining between steps.
transformers' ``PagedAttentionCache`` does that, but only with its own
paged attention kernels and its own generation manager, which has no
per-row LoRA adapters and no per-row sampling; so the cache is written here,
against the one method transformers' attention layers call on a cache:
``update(key_states, value_states, layer_idx)`` returns the keys and values
to attend over.

Layout: per layer one key and one value buffer of shape
``(slots, kv_heads, capacity, head_dim)``. The scheduler keeps the
occupied slots compact (a leaving sequence's slot is filled by moving the
last one into it), so the rows of one forward are slots ``start ..
start + rows`` and the keys handed to attention are a view, never a
gather. Each row writes at its own positions; the scheduler passes a 4D
mask that hides, per row, the positions past that row's length (and stale
data a previous occupant left), plus the causal part of a prefill chunk.

Memory bound: ``slots x capacity x bytes_per_token`` where capacity is the
longest prompt + answer among the sequences admitted; the scheduler admits
a sequence only while that stays under its budget (see ``batching.py``).
"""

from __future__ import annotations

from typing import Any


class SlotKVCache:
    """Keys and values per slot for every layer of one model (not thread-safe)."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, dtype: Any, device: str) -> None:
        self.layers = layers
        self.kv_heads = kv_heads
        self.head_dim = head_dim
        self.dtype = dtype
        self.device = device
        self.slots = 0  # rows allocated
        self.capacity = 0  # token positions allocated per row
        self.keys: list[Any] = []
        self.values: list[Any] = []
        # Where the forward in progress writes (set by ``begin``).
        self._start = 0
        self._rows = 0
        self._positions: Any = None  # (rows,) tensor for a decode step; int for a prefill chunk
        self._q_len = 0
        self._kv_len = 0

    @classmethod
    def for_model(cls, config: Any, dtype: Any, device: str) -> SlotKVCache:
        """A cache shaped for a transformers decoder ``config``."""
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return cls(config.num_hidden_layers, kv_heads, head_dim, dtype, device)

    @property
    def bytes_per_token(self) -> int:
        """Memory one token of one sequence takes: keys and values of every layer."""
        import torch

        size = torch.empty((), dtype=self.dtype).element_size()
        return 2 * self.layers * self.kv_heads * self.head_dim * size

    @property
    def allocated_bytes(self) -> int:
        return self.slots * self.capacity * self.bytes_per_token

    def reserve(self, slots: int, capacity: int) -> None:
        """Grow the buffers to hold at least ``slots`` rows of ``capacity`` tokens (kept data
        stays). Growth rounds up so that a stream of slightly longer requests does not copy
        the cache each time."""
        import torch

        if slots <= self.slots and capacity <= self.capacity:
            return
        new_slots = max(slots, self.slots)
        new_capacity = max(round_up(capacity, 256), self.capacity)
        shape = (new_slots, self.kv_heads, new_capacity, self.head_dim)
        for buffers in (self.keys, self.values):
            for i in range(self.layers):
                fresh = torch.zeros(shape, dtype=self.dtype, device=self.device)
                if i < len(buffers):
                    old = buffers[i]
                    fresh[: old.shape[0], :, : old.shape[2]] = old
                    buffers[i] = fresh
                else:
                    buffers.append(fresh)
        self.slots, self.capacity = new_slots, new_capacity

    def release(self) -> None:
        """Free every buffer (the scheduler does this when it goes idle)."""
        self.keys, self.values = [], []
        self.slots = self.capacity = 0

    def move(self, src: int, dst: int, length: int) -> None:
        """Copy the first ``length`` positions of slot ``src`` into slot ``dst``."""
        if src == dst or length == 0:
            return
        for buffers in (self.keys, self.values):
            for buf in buffers:
                buf[dst, :, :length] = buf[src, :, :length]

    def begin(self, start: int, positions: list[int], q_len: int) -> None:
        """Say where the next forward writes: rows ``start ..`` at ``positions`` (one per row),
        ``q_len`` tokens each (a prefill chunk has one row; a decode step one token per row)."""
        import torch

        if q_len > 1 and len(positions) != 1:
            raise ValueError("a prefill chunk covers one sequence")
        self._start, self._rows, self._q_len = start, len(positions), q_len
        self._kv_len = max(positions) + q_len
        if q_len == 1:
            self._positions = torch.tensor(positions, device=self.device)
        else:
            self._positions = positions[0]

    def update(
        self, key_states: Any, value_states: Any, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[Any, Any]:
        """Write this forward's keys and values into their slots; return what to attend over."""
        import torch

        rows = slice(self._start, self._start + self._rows)
        key_buf, value_buf = self.keys[layer_idx][rows], self.values[layer_idx][rows]
        if self._q_len == 1:
            index = torch.arange(self._rows, device=self.device)
            key_buf[index, :, self._positions] = key_states[:, :, 0].to(self.dtype)
            value_buf[index, :, self._positions] = value_states[:, :, 0].to(self.dtype)
        else:
            span = slice(self._positions, self._positions + self._q_len)
            key_buf[0, :, span] = key_states[0].to(self.dtype)
            value_buf[0, :, span] = value_states[0].to(self.dtype)
        return key_buf[:, :, : self._kv_len], value_buf[:, :, : self._kv_len]

    # transformers asks a cache these when it builds masks or positions itself; the
    # scheduler always passes both, so they are answered for safety only.
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self._kv_len

    def __len__(self) -> int:
        return self.layers


def round_up(value: int, step: int) -> int:
    return -(-value // step) * step
