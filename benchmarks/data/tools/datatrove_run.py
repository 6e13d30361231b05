"""Driver: datatrove 0.10.1 with its local executor (``LocalPipelineExecutor``, 2 workers).

datatrove parallelises over input *files*, so the JSONL input is first split
into ``--workers`` files (before the clock starts). Its global steps run as
separate executor stages, each reading what the previous one wrote:

1. read -> FTFYFormatter (encoding repair, control characters) ->
   NFKC + whitespace (a 6-line custom formatter: datatrove ships none) ->
   length (LambdaFilter) -> GopherQualityFilter -> GopherRepetitionFilter ->
   JsonlWriter -> ExactDedupSignature (casefolded text, as TailorML compares)
2. ExactFindDedups  3. ExactDedupFilter -> JsonlWriter -> MinhashDedupSignature
4. MinhashDedupBuckets (14 buckets x 8 hashes = 112)  5. MinhashDedupCluster
6. MinhashDedupFilter -> PIIFormatter (e-mails and IPs: all datatrove has) -> JsonlWriter

``--mode minhash`` runs read -> MinhashDedupSignature, then 4-6 without PII.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from pathlib import Path

from contract import (
    DATATROVE_BANDS,
    DATATROVE_ROWS,
    MIN_CHARS,
    NGRAM,
    count_lines,
    parse_args,
    write_result,
)
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupCluster, MinhashDedupFilter
from datatrove.pipeline.dedup.exact_dedup import (
    ExactDedupConfig,
    ExactDedupFilter,
    ExactDedupSignature,
    ExactFindDedups,
)
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupSignature,
)
from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, LambdaFilter
from datatrove.pipeline.formatters import FTFYFormatter, PIIFormatter
from datatrove.pipeline.formatters.base import BaseFormatter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

_SPACES = re.compile(r"[^\S\n]+")
_BLANKS = re.compile(r"\n{3,}")


class WhitespaceFormatter(BaseFormatter):
    """NFKC and whitespace collapsing, the part of TailorML's ``normalize`` ftfy does not do."""

    name = "whitespace"

    def format(self, text: str) -> str:
        text = _SPACES.sub(" ", unicodedata.normalize("NFKC", text))
        return _BLANKS.sub("\n\n", text.replace(" \n", "\n").replace("\n ", "\n")).strip()


def exact_key(doc) -> str:  # noqa: ANN001 - a datatrove Document
    return " ".join(doc.text.casefold().split())


def split_input(path: Path, parts: int, folder: Path) -> None:
    folder.mkdir(parents=True)
    outs = [(folder / f"part-{i}.jsonl").open("w", encoding="utf-8") for i in range(parts)]
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            outs[n % parts].write(line)
    for out in outs:
        out.close()


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    w, k = args.workdir, args.workers
    split_input(args.input, k, w / "input")
    minhash = MinhashConfig(
        n_grams=NGRAM, num_buckets=DATATROVE_BANDS, hashes_per_bucket=DATATROVE_ROWS
    )
    exact = ExactDedupConfig(content_getter=exact_key)

    def stage(pipeline: list, tasks: int = k, depends=None) -> LocalPipelineExecutor:  # noqa: ANN001
        n = len(list(w.glob("logs/*"))) if (w / "logs").exists() else 0
        return LocalPipelineExecutor(
            pipeline=pipeline,
            tasks=tasks,
            workers=k,
            logging_dir=str(w / "logs" / f"stage{n}-{id(pipeline)}"),
            depends=depends,
        )

    read = JsonlReader(str(w / "input"))
    if args.mode == "pipeline":
        s1 = stage(
            [
                read,
                FTFYFormatter(),
                WhitespaceFormatter(),
                LambdaFilter(lambda doc: len(doc.text) >= MIN_CHARS),
                GopherQualityFilter(),
                GopherRepetitionFilter(),
                JsonlWriter(str(w / "filtered"), output_filename="${rank}.jsonl", compression=None),
                ExactDedupSignature(output_folder=str(w / "exact_sigs"), config=exact),
            ]
        )
        s2 = stage(
            [ExactFindDedups(str(w / "exact_sigs"), str(w / "exact_dups"), config=exact)],
            tasks=1,
            depends=s1,
        )
        s3 = stage(
            [
                JsonlReader(str(w / "filtered")),
                ExactDedupFilter(str(w / "exact_dups"), config=exact),
                JsonlWriter(str(w / "exact"), output_filename="${rank}.jsonl", compression=None),
                MinhashDedupSignature(output_folder=str(w / "sigs"), config=minhash),
            ],
            depends=s2,
        )
        last_input = str(w / "exact")
        tail = [PIIFormatter()]
    else:
        s3 = stage([read, MinhashDedupSignature(output_folder=str(w / "sigs"), config=minhash)])
        last_input = str(w / "input")
        tail = []
    s4 = stage(
        [MinhashDedupBuckets(str(w / "sigs"), str(w / "buckets"), config=minhash)],
        tasks=DATATROVE_BANDS,
        depends=s3,
    )
    s5 = stage(
        [MinhashDedupCluster(str(w / "buckets"), str(w / "remove_ids"), config=minhash)],
        tasks=1,
        depends=s4,
    )
    s6 = stage(
        [
            JsonlReader(last_input),
            MinhashDedupFilter(str(w / "remove_ids")),
            *tail,
            JsonlWriter(str(w / "output"), output_filename="${rank}.jsonl", compression=None),
        ],
        depends=s5,
    )
    start = time.perf_counter()
    s6.run()  # runs the stages it depends on first
    seconds = time.perf_counter() - start
    kept = []
    for path in sorted((w / "output").glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            kept += [json.loads(line)["id"] for line in fh]
    write_result(
        w, kept, seconds, count_lines(args.input), ["input pre-split into one file per worker"]
    )


if __name__ == "__main__":
    main()
