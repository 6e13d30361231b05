"""Fine-tuned embedding models over /v1/embeddings (the openai SDK) and /v1/rerank (httpx: the
SDK has none), for their tenant only; rerank with a cross-encoder classifier too. On the tiny
BERT trained by the real embedding task on C4 sentence pairs."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch", reason="inference needs the ml extra (torch)")

import torch  # noqa: E402
from openai import NotFoundError, OpenAI  # noqa: E402
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from tailorml.platform.auth import get_tenant  # noqa: E402
from tailorml.platform.db.engine import session_scope  # noqa: E402
from tailorml.platform.db.models import Model  # noqa: E402
from tailorml.records import EmbeddingPairRecord  # noqa: E402
from tailorml.train.embedding import pool  # noqa: E402
from tailorml.train.loop import TrainSpec, train  # noqa: E402
from tests import fixture_data  # noqa: E402
from tests.platform.api.test_errors import error  # noqa: E402
from tests.platform.test_usage import results, usage  # noqa: E402

QUERY = "How do I get back into my account after changing my email?"
DOCUMENTS = [
    "My email changed and voila, I was no longer able to access my Pinterest account.",
    {"text": "The recipe needs two cups of flour and a pinch of salt."},
    "Reset your password from the login page to access the account again.",
]
TEXTS = [d if isinstance(d, str) else d["text"] for d in DOCUMENTS]


@pytest.fixture(scope="module")
def models(tiny_encoder, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Embedders fine-tuned (full and LoRA) by the embedding task, and two cross-encoders."""
    root = tmp_path_factory.mktemp("rerank_models")
    pairs = [EmbeddingPairRecord(a, b) for a, b in fixture_data.different_pairs()[:48]]
    out = {"base": tiny_encoder.path}
    for method, rate in (("full", 2e-3), ("lora", 5e-2)):
        spec = TrainSpec(task="embedding", method=method, n_epochs=1, batch_size=16,
                         learning_rate=rate, max_length=64)  # fmt: skip
        out[method] = train(spec, tiny_encoder, pairs, None, root / method,
                            on_event=lambda e: None).model_dir  # fmt: skip
    for name, labels in (("cross", ["irrelevant", "relevant"]), ("single", ["score"])):
        torch.manual_seed(3)
        model = AutoModelForSequenceClassification.from_pretrained(
            tiny_encoder.path, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )  # fmt: skip
        model.save_pretrained(root / name)
        AutoTokenizer.from_pretrained(tiny_encoder.path).save_pretrained(root / name)
        out[name] = root / name
    return out


def register(client, tenant: str, name: str, path: Path, task: str) -> str:  # type: ignore[no-untyped-def]
    with session_scope(client.app.state.tailor.sessions) as s:
        tenant_id = get_tenant(s, name_or_id=tenant).id
        model_id = f"ft:tiny-bert:{tenant}:{name}:00000001"
        s.add(Model(id=model_id, tenant_id=tenant_id, base="tiny-bert", task=task, path=str(path)))
    return model_id


def sdk(client, headers) -> OpenAI:  # type: ignore[no-untyped-def]
    key = headers["Authorization"].removeprefix("Bearer ")
    return OpenAI(base_url="http://testserver/v1", api_key=key, http_client=client, max_retries=0)


def pooled(model, tokenizer, texts: list[str]) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Embeddings as training computes them (``tailorml.train.embedding.pool``)."""
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    return pool(hidden, enc["attention_mask"])


@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_fine_tuned_embedder_serves_its_tenant_only(client, acme, globex, models, method) -> None:  # type: ignore[no-untyped-def]
    model_id = register(client, "acme", method, models[method], "embedding")
    out = sdk(client, acme).embeddings.create(model=model_id, input=TEXTS)
    served = torch.tensor([d.embedding for d in out.data])

    tokenizer = AutoTokenizer.from_pretrained(models["base"])
    base = AutoModel.from_pretrained(models["base"]).eval()
    if method == "full":
        tuned = AutoModel.from_pretrained(models["full"]).eval()
    else:
        from peft import PeftModel

        tuned = PeftModel.from_pretrained(AutoModel.from_pretrained(models["base"]), models["lora"])
    # The server pools as training did, with the fine-tuned weights (the adapter applied).
    torch.testing.assert_close(served, pooled(tuned.eval(), tokenizer, TEXTS), atol=1e-5, rtol=0)
    assert not torch.allclose(served, pooled(base, tokenizer, TEXTS), atol=1e-3)
    assert out.usage.prompt_tokens == sum(len(tokenizer(t)["input_ids"]) for t in TEXTS)

    with pytest.raises(NotFoundError) as info:
        sdk(client, globex).embeddings.create(model=model_id, input=TEXTS)
    assert info.value.code == "model_not_found"


def test_rerank_orders_documents_by_an_embedders_cosine(client, acme, globex, models) -> None:  # type: ignore[no-untyped-def]
    model_id = register(client, "acme", "rr", models["full"], "embedding")
    body = {"model": model_id, "query": QUERY, "documents": DOCUMENTS}
    res = client.post("/v1/rerank", headers=acme, json=body)
    assert res.status_code == 200, res.text
    answer = res.json()
    vectors = sdk(client, acme).embeddings.create(model=model_id, input=[QUERY, *TEXTS])
    embedded = torch.tensor([d.embedding for d in vectors.data])
    cosines = (embedded[1:] @ embedded[0]).tolist()
    assert answer["object"] == "rerank" and answer["model"] == model_id
    assert answer["id"].startswith("rerank-")
    assert [r["index"] for r in answer["results"]] == sorted(range(3), key=lambda i: -cosines[i])
    for r in answer["results"]:
        assert r["relevance_score"] == pytest.approx(cosines[r["index"]], abs=1e-5)
        assert r["document"] == {"text": TEXTS[r["index"]]}
    # The query and each document, counted once, as /v1/embeddings counts them; and metered.
    assert answer["usage"]["total_tokens"] == vectors.usage.total_tokens
    client.app.state.tailor.usage.flush()
    page = usage(client, acme, bucket_width="1h", group_by="model")
    (row,) = results(page)
    assert row["num_model_requests"] == 2
    assert row["input_tokens"] == 2 * vectors.usage.total_tokens

    top = client.post("/v1/rerank", headers=acme, json=body | {"top_n": 1,
                                                                "return_documents": False})  # fmt: skip
    assert top.json()["results"] == [{k: v for k, v in answer["results"][0].items()
                                      if k != "document"}]  # fmt: skip
    err = error(client.post("/v1/rerank", headers=globex, json=body), 404)
    assert err["code"] == "model_not_found"


@pytest.mark.parametrize("name", ["cross", "single"])
def test_rerank_scores_query_document_pairs_with_a_cross_encoder(
    client, acme, models, name
) -> None:  # type: ignore[no-untyped-def]
    model_id = register(client, "acme", name, models[name], "classification")
    res = client.post("/v1/rerank", headers=acme,
                      json={"model": model_id, "query": QUERY, "documents": DOCUMENTS})  # fmt: skip
    assert res.status_code == 200, res.text
    tokenizer = AutoTokenizer.from_pretrained(models[name])
    model = AutoModelForSequenceClassification.from_pretrained(models[name]).eval()
    # Pairs with their segment ids, as cross-encoders read them.
    enc = tokenizer([QUERY] * 3, TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits
    expected = torch.sigmoid(logits[:, 0]) if name == "single" else logits.softmax(-1)[:, 1]
    scores = {r["index"]: r["relevance_score"] for r in res.json()["results"]}
    assert [scores[i] for i in range(3)] == pytest.approx(expected.tolist(), abs=1e-5)
    assert res.json()["usage"]["total_tokens"] == int(enc["attention_mask"].sum())


def test_rerank_refuses_what_it_cannot_do(client, acme, models, tiny_models) -> None:  # type: ignore[no-untyped-def]
    model_id = register(client, "acme", "bad", models["full"], "embedding")

    def refused(status: int = 400, **body: object) -> dict:  # type: ignore[type-arg]
        request = {"model": model_id, "query": QUERY, "documents": TEXTS} | body
        return error(client.post("/v1/rerank", headers=acme, json=request), status)

    assert refused(documents=[])["param"] == "documents"
    too_many = refused(documents=["a document"] * 1001)
    assert "at most 1000 documents" in too_many["message"]
    assert "documents[1]" in refused(documents=["fine", "  "])["message"]
    assert refused(query="")["param"] == "query"
    assert refused(top_n=0)["param"] == "top_n"
    long = refused(documents=["word " * 600])
    assert long["code"] == "context_length_exceeded" and "truncate" in long["message"]
    cut = client.post("/v1/rerank", headers=acme, json={"model": model_id, "query": QUERY,
                                                        "documents": ["word " * 600],
                                                        "truncate": True})  # fmt: skip
    assert cut.status_code == 200 and cut.json()["usage"]["total_tokens"] <= 512 + 20
    chat = register(client, "acme", "chat", tiny_models["decoder"], "chat")
    err = refused(model=chat)
    assert err["code"] == "invalid_model_for_endpoint" and "cannot rerank" in err["message"]


def test_rerank_is_in_the_openapi_description(client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/rerank"]["post"]
    assert "relevance" in operation["description"] and "400" in operation["responses"]
    body = spec["components"]["schemas"]["RerankRequest"]["properties"]
    assert {"model", "query", "documents", "top_n", "return_documents"} <= set(body)
