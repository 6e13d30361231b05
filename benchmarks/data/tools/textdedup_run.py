"""Driver: text-dedup 0.4.0 through its documented command lines (Hugging Face ``datasets``).

text-dedup is a dedup-only toolkit: it has no normalizer, quality filter or
PII step, so ``--mode pipeline`` runs what it has of the pipeline,
``text_dedup.exact_hash`` (xxh3 of the raw text) then ``text_dedup.minhash``
(112 permutations, word 5-grams, threshold 0.7, xxh3, ``--min_length 0``
so short records are not dropped). ``--mode minhash`` runs the second
alone. Both use ``--num_proc`` processes and a fresh ``datasets`` cache per
run, so no run reuses another's cached Arrow files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from contract import NGRAM, NUM_PERM, THRESHOLD, count_lines, parse_args, write_result


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    w = args.workdir
    cache = w / "hf_cache"
    env = dict(os.environ, HF_DATASETS_CACHE=str(cache), HF_HOME=str(w / "hf_home"))
    common = ["--column", "text", "--num_proc", str(args.workers), "--cache_dir", str(cache)]
    source = ["--path", "json", "--data_files", str(args.input), "--split", "train"]
    minhash = [
        "--num_perm",
        str(NUM_PERM),
        "--ngram",
        str(NGRAM),
        "--threshold",
        str(THRESHOLD),
        "--min_length",
        "0",
        "--hash_func",
        "xxh3",
    ]
    commands = []
    if args.mode == "pipeline":
        exact_out = w / "exact"
        commands.append(
            [
                "text_dedup.exact_hash",
                *source,
                *common,
                "--hash_func",
                "xxh3",
                "--output",
                str(exact_out),
            ]
        )
        source = ["--local", "--path", str(exact_out)]
    commands.append(["text_dedup.minhash", *source, *common, *minhash, "--output", str(w / "out")])
    start = time.perf_counter()
    for cmd in commands:
        subprocess.run([sys.executable, "-m", *cmd], env=env, check=True)
    seconds = time.perf_counter() - start

    import datasets

    kept = datasets.load_from_disk(str(w / "out"))["id"]
    notes = ["exact_hash + minhash only: text-dedup has no normalize, filters or PII"]
    if args.mode == "minhash":
        notes = []
    write_result(w, list(kept), seconds, count_lines(args.input), notes)


if __name__ == "__main__":
    main()
