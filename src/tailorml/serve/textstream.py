"""Turning generated token ids into text pieces, and cutting the text at stop strings.

Two small state machines the engine chains for every request, streamed or
not (a non-streamed answer is the join of the streamed pieces, so the two
cannot disagree):

* ``IncrementalDecoder`` emits the text each new token adds. Decoding one
  token alone is wrong for byte-level BPE (a character may span tokens) and
  for SentencePiece (leading spaces depend on the neighbour), so it decodes
  a short window of recent tokens and emits only what the window gained,
  waiting while the text ends in an incomplete character. This is the
  scheme of text-generation-inference and vLLM.
* ``StopStringCutter`` holds back any tail that could be the start of a
  stop string, so a client never sees part of a stop string, and reports
  the text before the first complete one.
"""

from __future__ import annotations

from tailorml.serve.backend import Tokenizer

_INCOMPLETE = "\ufffd"  # what decode() shows for bytes that do not finish a character yet


class IncrementalDecoder:
    """Text deltas for a growing list of token ids (special tokens skipped)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tok = tokenizer
        self._ids: list[int] = []
        self._prefix = 0  # start of the window that gives the next delta its context
        self._read = 0  # end of what was already emitted

    def _decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)

    def push(self, token_id: int) -> str:
        """Add one token; return the text it completes (often "", e.g. mid-character)."""
        self._ids.append(token_id)
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) > len(before) and not after.endswith(_INCOMPLETE):
            self._prefix, self._read = self._read, len(self._ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        """The text still held back at the end (an unfinished character shows as U+FFFD)."""
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return after[len(before) :]


class StopStringCutter:
    """Pass text through until a stop string; never emit a possible prefix of one."""

    def __init__(self, stops: list[str] | None) -> None:
        self._stops = [s for s in stops or [] if s]
        self._pending = ""
        self.stopped = False

    def push(self, text: str) -> str:
        """Add text; return what is safe to show. After a stop, ``stopped`` is True."""
        if self.stopped:
            return ""
        if not self._stops:
            return text
        self._pending += text
        hits = [i for i in (self._pending.find(s) for s in self._stops) if i >= 0]
        if hits:
            self.stopped = True
            out, self._pending = self._pending[: min(hits)], ""
            return out
        keep = self._held_back(self._pending)
        out = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(out) :]
        return out

    def _held_back(self, text: str) -> int:
        """Length of the longest tail of ``text`` that begins some stop string."""
        longest = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), longest, -1):
                if stop.startswith(text[-n:]):
                    longest = n
                    break
        return longest

    def flush(self) -> str:
        """At the end of generation the held-back tail was no stop string after all."""
        out, self._pending = self._pending, ""
        return "" if self.stopped else out
