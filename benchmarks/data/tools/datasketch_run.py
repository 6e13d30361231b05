"""Driver: datasketch 2.0.0, the 20-line script most people write (near-dedup only).

Shingles are word 5-grams of the casefolded ``\\w+`` words (the ground
truth's definition), hashed by ``MinHash.bulk`` (SHA-1, 112 permutations);
``MinHashLSH(threshold=0.7)`` picks its own bands. Records are streamed in
order: a record with any LSH candidate among the kept ones is dropped,
otherwise it is inserted (keep-first, as the other tools do). One process.
"""

from __future__ import annotations

import json
import re
import time

from contract import NGRAM, NUM_PERM, THRESHOLD, count_lines, parse_args, write_result
from datasketch import MinHash, MinHashLSH

_WORD_RE = re.compile(r"\w+")


def shingle_set(text: str) -> list[bytes]:
    words = _WORD_RE.findall(text.casefold())
    grams = {" ".join(words[i : i + NGRAM]) for i in range(max(1, len(words) - NGRAM + 1))}
    return [g.encode("utf-8") for g in grams]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    if args.mode != "minhash":
        raise SystemExit("datasketch is a MinHash library: only --mode minhash is benchmarked.")
    with args.input.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    start = time.perf_counter()
    sigs = MinHash.bulk([shingle_set(r["text"]) for r in rows], num_perm=NUM_PERM)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    kept = []
    for row, sig in zip(rows, sigs, strict=True):
        if not lsh.query(sig):
            lsh.insert(row["id"], sig)
            kept.append(row["id"])
    seconds = time.perf_counter() - start
    write_result(args.workdir, kept, seconds, count_lines(args.input), ["single process"])


if __name__ == "__main__":
    main()
