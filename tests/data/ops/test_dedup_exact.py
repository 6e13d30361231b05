"""exact_dedup on ChnSentiCorp (which holds real exact duplicates) and C4 copies."""

from __future__ import annotations

from tailorml.data.core import Document
from tailorml.data.ops.dedup_exact import ExactDedup, text_digest
from tailorml.data.ops.normalize import canonical_text


def test_chnsenticorp_train_duplicates(zh_reviews_train: list[str]) -> None:
    docs = [Document(f"train:{i}", {"text": t}) for i, t in enumerate(zh_reviews_train)]
    results = list(ExactDedup().run(docs))
    assert [d.id for d, _ in results] == [d.id for d in docs]
    kept = [d for d, v in results if v.keep]
    # PROVENANCE.md: 8,249 distinct texts among 9,600; canonical forms merge a few more.
    distinct = len({canonical_text(t) for t in zh_reviews_train})
    assert len(kept) == distinct and 8100 <= distinct <= 8249
    first = {}
    for d, v in results:
        key = canonical_text(d.fields["text"])
        if v.keep:
            first[key] = d.id
        else:
            assert v.reason == f"exact duplicate of {first[key]}"


def test_spacing_case_and_punctuation_variants(c4: list[str]) -> None:
    original = c4[5]
    variants = {
        "spaced": "  " + "   ".join(original.split()) + "\n",
        "upper": original.upper(),
        "fullwidth": original.replace("a", "\uff41"),  # NFKC folds full-width letters
        "punct": original.replace(",", "").replace(".", " ."),
    }
    docs = (
        [Document("c4:5", {"text": original})]
        + [Document(k, {"text": v}) for k, v in variants.items()]
        + [Document(f"c4:{i}", {"text": t}) for i, t in enumerate(c4[6:40], start=6)]
    )
    dropped = {d.id for d, v in ExactDedup().run(docs) if not v.keep}
    assert dropped == {"spaced", "upper", "fullwidth"}
    dropped = {d.id for d, v in ExactDedup(strip_punctuation=True).run(docs) if not v.keep}
    assert dropped == {"spaced", "upper", "fullwidth", "punct"}
    dropped = {d.id for d, v in ExactDedup(casefold=False).run(docs) if not v.keep}
    assert dropped == {"spaced", "fullwidth"}


def test_fields_select_what_is_compared(sst2: list[str]) -> None:
    a = Document("a", {"text": sst2[0], "label": "1"})
    b = Document("b", {"text": sst2[0], "label": "0"})
    assert [v.keep for _, v in ExactDedup().run([a, b])] == [True, False]
    both = ExactDedup(fields=["text", "label"])
    assert [v.keep for _, v in both.run([a, b])] == [True, True]
    assert len(text_digest(sst2[0])) == 16
