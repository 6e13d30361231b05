"""The evaluation report: base against tuned on the held-out records, on tiny models.

Each figure is checked against an independent computation (the classifier's
accuracy re-measured from its folder, the LoRA base's answers from a freshly
loaded base), so the report cannot pass by being merely well-formed.
"""

from __future__ import annotations

from tailorml.eval.classification import accuracy
from tailorml.eval.generation import generate_greedy, prompt_and_reference
from tailorml.eval.html import render_report_html
from tailorml.eval.report import build_report, read_report, write_report
from tailorml.records import ChatRecord, ClassificationRecord, Message
from tailorml.train.loop import train
from tests.train.conftest import EventLog, glaive_chats, spam_records
from tests.train.test_loop import chat_spec, cls_spec


def test_classification_report_compares_with_the_base(tiny_encoder, tmp_path) -> None:
    train_records, valid = spam_records("train", 32), spam_records("dev", 16)
    events = EventLog()
    result = train(
        cls_spec(n_epochs=3), tiny_encoder, train_records, valid, tmp_path, on_event=events
    )
    report = build_report(
        result.model_dir, tiny_encoder, train_records, valid, training=result.metrics
    )
    ev = report["evaluation"]
    tuned, base = ev["tuned"], ev["base"]
    assert ev["n"] == 16 and report["labels"] == sorted({r.label for r in train_records})
    assert tuned["accuracy"] == accuracy(result.model_dir, valid)  # re-measured from the folder
    assert sum(map(sum, tuned["confusion_matrix"])) == sum(map(sum, base["confusion_matrix"])) == 16
    assert 0 <= tuned["ece"] <= 1 and sum(b["count"] for b in tuned["reliability"]) == 16
    assert ev["headline"] == {
        "metric": "accuracy",
        "base": base["accuracy"],
        "tuned": tuned["accuracy"],
    }
    assert ev["majority"]["accuracy"] > 0
    # Samples show disagreements first.
    first = report["samples"][0]
    disagree = any(s["base"] != s["tuned"] for s in report["samples"])
    assert not disagree or first["base"] != first["tuned"]
    write_report(result.model_dir, report)
    assert read_report(result.model_dir) == report


def test_lora_generation_report_uses_the_base_without_its_adapter(tiny_decoder, tmp_path) -> None:
    chats = glaive_chats(16, max_chars=300)
    train_part, valid = chats[:12], chats[12:]
    result = train(
        chat_spec(n_epochs=1), tiny_decoder, train_part, valid, tmp_path, on_event=EventLog()
    )
    report = build_report(
        result.model_dir, tiny_decoder, train_part, valid, training=result.metrics
    )
    ev = report["evaluation"]
    assert ev["n"] == 4 and report["task"] == "chat"
    assert ev["tuned"]["valid_loss"] == result.metrics["valid_loss"]
    assert ev["base"]["valid_loss"] == result.metrics["base_valid_loss"]
    assert ev["base"]["perplexity"] > 1
    # The base's answers are the base model's own, loaded separately here.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    base_model = AutoModelForCausalLM.from_pretrained(tiny_decoder.path).eval()
    prompts = [prompt_and_reference(tokenizer, r)[0] for r in valid]  # type: ignore[index]
    budget = [
        min(128, max(16, 2 * len(tokenizer(s["reference"], add_special_tokens=False).input_ids)))
        for s in report["samples"]
    ]
    answers = generate_greedy(base_model, tokenizer, prompts, budget, special_tokens=False)
    assert [s["base"] for s in report["samples"]] == [a[:600] for a in answers]
    for key in ("exact_match", "bleu", "chrf", "rouge_l"):
        assert key in ev["tuned"] and key in ev["base"]


def test_no_held_out_records_says_so(tiny_encoder, tmp_path) -> None:
    records = spam_records("train", 8)
    result = train(cls_spec(n_epochs=1), tiny_encoder, records, [], tmp_path, on_event=EventLog())
    report = build_report(result.model_dir, tiny_encoder, records, [], training=result.metrics)
    assert report["evaluation"] is None and "validation_file" in report["notes"][0]


def test_the_page_escapes_tenant_text() -> None:
    hostile = "<script>alert(1)</script>"
    report = {
        "task": "classification",
        "method": "full",
        "base_model": "tiny",
        "n_validation": 2,
        "training": {"best_step": 3},
        "labels": [hostile, "ham"],
        "notes": [],
        "evaluation": {
            "n": 2,
            "headline": {"metric": "accuracy", "base": 0.5, "tuned": 1.0},
            "majority": {"label": hostile, "accuracy": 0.5},
            "base": {
                "how": "nearest centroid",
                "accuracy": 0.5,
                "macro_f1": 0.33,
                "per_class": {
                    hostile: {"precision": 0.5, "recall": 1.0, "f1": 0.66, "support": 1},
                    "ham": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
                },
                "confusion_matrix": [[1, 0], [1, 0]],
            },
            "tuned": {
                "accuracy": 1.0,
                "macro_f1": 1.0,
                "per_class": {
                    hostile: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
                    "ham": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
                },
                "confusion_matrix": [[1, 0], [0, 1]],
                "ece": 0.1,
                "reliability": [
                    {"low": 0.8, "high": 0.9, "count": 2, "confidence": 0.9, "accuracy": 1.0}
                ],
            },
        },
        "samples": [{"input": hostile, "reference": hostile, "base": "ham", "tuned": hostile}],
        "explanations": [
            {
                "input": hostile,
                "label": hostile,
                "tokens": ["[CLS]", hostile, "[SEP]"],
                "attributions": [0.0, 0.4, 0.0],
                "neighbors": [{"line": 3, "text": hostile, "label": hostile, "similarity": 0.9}],
            }
        ],
    }
    history = [{"step": 0, "valid_loss": 0.7}, {"step": 1, "train_loss": 0.6, "valid_loss": 0.5}]
    page = render_report_html(report, history, hostile)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<svg") >= 4  # loss curve, comparison, two confusion matrices, reliability
    assert "nearest training records" in page and "title='+0.4000'" in page


def test_prompt_and_reference_of_a_chat_ends_at_its_last_reply(tiny_decoder) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder.path)
    chat = ChatRecord(
        [
            Message("user", "Hi"),
            Message("assistant", "Hello"),
            Message("user", "Bye"),
            Message("assistant", "See you"),
        ]
    )
    prompt, reference = prompt_and_reference(tokenizer, chat)  # type: ignore[misc]
    assert reference == "See you" and "Bye" in prompt and "See you" not in prompt
    assert prompt_and_reference(tokenizer, ClassificationRecord("x", "y")) is None


def test_a_dpo_model_is_reported_against_its_preferred_replies(tiny_decoder, tmp_path) -> None:
    from tests.train.test_preference import dpo_spec, shouted_pairs

    pairs = shouted_pairs(12)
    result = train(
        dpo_spec(n_epochs=1), tiny_decoder, pairs[:8], pairs[8:], tmp_path, on_event=EventLog()
    )
    report = build_report(
        result.model_dir, tiny_decoder, pairs[:8], pairs[8:], training=result.metrics
    )
    ev = report["evaluation"]
    assert report["task"] == "preference" and ev["n"] == 4
    assert [s["reference"] for s in report["samples"]] == [
        p.preferred[-1].content for p in pairs[8:]
    ]
    assert "perplexity" not in ev["tuned"]  # a DPO loss is not a language-model loss
