"""Driver: Data-Juicer 1.6.1's default (local) executor with ``np`` processes.

The pipeline uses the operators that work offline (those needing fastText,
KenLM or stop-word files download them and fail here):

- normalize: ``fix_unicode_mapper`` (ftfy, NFKC), ``whitespace_normalization_mapper``;
- length: ``text_length_filter`` (min 100 characters);
- quality (the Gopher rules Data-Juicer has counterparts for):
  ``words_num_filter`` (50 to 100,000 words), ``word_repetition_filter``
  (10-grams, at most 0.10), ``character_repetition_filter``,
  ``alphanumeric_filter``, ``special_characters_filter`` (defaults);
- ``document_deduplicator`` (md5 of the lowercased text);
- ``document_minhash_deduplicator`` (space tokens, 5-grams, lowercase, 112
  permutations, threshold 0.7);
- PII: ``clean_email_mapper``, ``clean_ip_mapper``.

``--mode minhash`` runs ``document_minhash_deduplicator`` alone. The cache of
Hugging Face ``datasets`` is off, so no run reuses another's results.
"""

from __future__ import annotations

import json
import time

from contract import MIN_CHARS, NGRAM, NUM_PERM, THRESHOLD, count_lines, parse_args, write_result

MINHASH = {
    "document_minhash_deduplicator": {
        "tokenization": "space",
        "window_size": NGRAM,
        "lowercase": True,
        "num_permutations": NUM_PERM,
        "jaccard_threshold": THRESHOLD,
    }
}
PIPELINE = [
    {"fix_unicode_mapper": {"normalization": "NFKC"}},
    {"whitespace_normalization_mapper": {}},
    {"text_length_filter": {"min_len": MIN_CHARS}},
    {"words_num_filter": {"min_num": 50, "max_num": 100_000}},
    {"word_repetition_filter": {"rep_len": 10, "max_ratio": 0.1}},
    {"character_repetition_filter": {}},
    {"alphanumeric_filter": {}},
    {"special_characters_filter": {}},
    {"document_deduplicator": {"lowercase": True}},
    MINHASH,
    {"clean_email_mapper": {}},
    {"clean_ip_mapper": {}},
]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    w = args.workdir
    config = {
        "project_name": "bench",
        "dataset_path": str(args.input),
        "export_path": str(w / "out" / "kept.jsonl"),
        "work_dir": str(w / "dj_work"),
        "np": args.workers,
        "text_keys": "text",
        "use_cache": False,
        "open_tracer": False,
        "process": PIPELINE if args.mode == "pipeline" else [MINHASH],
    }
    (w / "config.json").write_text(json.dumps(config, indent=1))
    start = time.perf_counter()
    from data_juicer.config import init_configs
    from data_juicer.core import DefaultExecutor

    cfg = init_configs(args=["--config", str(w / "config.json")])
    DefaultExecutor(cfg).run()
    seconds = time.perf_counter() - start
    with (w / "out" / "kept.jsonl").open(encoding="utf-8") as fh:
        kept = [json.loads(line)["id"] for line in fh]
    notes = ["timing includes importing data_juicer (its ops register at import)"]
    write_result(w, kept, seconds, count_lines(args.input), notes)


if __name__ == "__main__":
    main()
