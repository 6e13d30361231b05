"""API1 (broken object level authorization), server edition: through /v1/datasets a tenant could
name objects that are not its own — any YAML file of the server as a recipe, any server file as a
word list or evaluation set, any folder as a model, another tenant's files and models. Each test
is an attack that worked before the tenant-facing recipe surface existed."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from tailorml.platform.jobs.worker import Worker
from tailorml.platform.settings import Settings
from tests.conftest import EXAMPLES
from tests.platform.test_files import upload

SECRET_RECIPE = "name: leaked\ndescription: hunter2-operator-secret\nsteps:\n  - op: normalize\n"


def _input(client: TestClient, headers: dict[str, str], tmp_path: Path) -> str:
    path = tmp_path / "input.jsonl"
    rows = [{"text": f"record number {i} about root and daemon users"} for i in range(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(upload(client, headers, path, purpose="user_data").json()["id"])


def _create(client: TestClient, headers: dict[str, str], file_id: str, recipe: object):  # type: ignore[no-untyped-def]
    return client.post("/v1/datasets", headers=headers, json={"files": [file_id], "recipe": recipe})


def test_recipe_name_never_reads_a_server_file(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "secret.yaml"
    secret.write_text(SECRET_RECIPE)
    file_id = _input(client, acme, tmp_path)
    recipes = Path(__file__).resolve().parents[2] / "recipes"
    traversal = "../" * len(recipes.parts) + str(secret.with_suffix(""))[1:]
    for name in (str(secret.with_suffix("")), str(secret), traversal, "..", "."):
        res = _create(client, acme, file_id, name)
        assert res.status_code == 400, (name, res.text)
        assert "hunter2" not in res.text and "leaked" not in res.text
        assert res.json()["error"]["code"] in ("recipe_not_found", "invalid_recipe")
    assert client.get("/v1/datasets", headers=acme).json()["data"] == []


def test_registered_recipes_by_name_only(client, acme, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    operator = tmp_path / "operator-recipes"
    operator.mkdir()
    (operator / "house-style.yaml").write_text("name: house-style\nsteps:\n  - op: normalize\n")
    settings.recipes_dir = operator
    file_id = _input(client, acme, tmp_path)
    res = _create(client, acme, file_id, "house-style")
    assert res.status_code == 200, res.text
    assert res.json()["recipe_name"] == "house-style"
    assert _create(client, acme, file_id, "web-text-cleanup").status_code == 200  # shipped
    unknown = _create(client, acme, file_id, "no-such-recipe")
    assert unknown.status_code == 400 and "house-style" in unknown.json()["error"]["message"]


def test_word_lists_and_eval_sets_are_file_ids_not_server_paths(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    file_id = _input(client, acme, tmp_path)
    for step in (
        {"op": "blocklist", "path": "/etc/passwd"},
        {"op": "decontaminate", "path": "/proc/self/environ", "ngram": 1, "min_words": 1},
        {"op": "blocklist", "path": "../../../../etc/passwd"},
    ):
        res = _create(client, acme, file_id, {"name": "probe", "steps": [step]})
        assert res.status_code == 400, (step, res.text)
        assert "file id" in res.json()["error"]["message"]
        assert "root:" not in res.text


def test_another_tenants_file_is_not_a_word_list(client, acme, globex, tmp_path) -> None:  # type: ignore[no-untyped-def]
    theirs = tmp_path / "theirs.txt"
    theirs.write_text("daemon\n")
    their_file = upload(client, globex, theirs, purpose="user_data").json()["id"]
    file_id = _input(client, acme, tmp_path)
    recipe = {"name": "probe", "steps": [{"op": "blocklist", "path": their_file}]}
    res = _create(client, acme, file_id, recipe)
    assert res.status_code == 400 and "file id" in res.json()["error"]["message"], res.text


def test_another_tenants_model_is_not_an_encoder(client, acme, globex, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tailorml.platform.auth import get_tenant
    from tailorml.platform.db.engine import session_scope
    from tailorml.platform.db.models import Model

    theirs = "ft:minilm-l6:globex:secret:0123456789ab"
    with session_scope(client.app.state.tailor.sessions) as s:
        tenant = get_tenant(s, name_or_id="globex")
        s.add(Model(id=theirs, tenant_id=tenant.id, base="minilm-l6", task="classification",
                    path=str(tmp_path / "their-model")))  # fmt: skip
    file_id = _input(client, acme, tmp_path)
    for step in (
        {"op": "semantic_dedup", "model": theirs},
        {"op": "chat_length", "tokenizer": theirs},
    ):
        res = _create(client, acme, file_id, {"name": "probe", "steps": [step]})
        assert res.status_code == 400, (step, res.text)
        assert "their-model" not in res.text
    res = _create(client, globex, _input(client, globex, tmp_path),
                  {"name": "mine", "steps": [{"op": "semantic_dedup", "model": theirs}]})  # fmt: skip
    assert res.status_code == 200, res.text


def test_own_word_list_by_file_id_runs(client, acme, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    words = tmp_path / "words.txt"
    words.write_text("# blocked words\nrecord number 3 about\n")
    words_id = upload(client, acme, words, purpose="user_data").json()["id"]
    file_id = _input(client, acme, tmp_path)
    recipe = {"name": "words", "steps": [{"op": "blocklist", "path": words_id}]}
    res = _create(client, acme, file_id, recipe)
    assert res.status_code == 200, res.text
    assert words_id in res.json()["recipe"]  # the stored recipe keeps the id, not a path
    settings.data_workers = 1
    assert Worker(settings).run(max_jobs=1) == 1
    ds = client.get(f"/v1/datasets/{res.json()['id']}", headers=acme).json()
    assert ds["status"] == "succeeded", ds["error"]
    assert ds["counts"]["removed"] == 1 and ds["counts"]["written"] == 19


def test_models_are_catalog_names_or_own_models(client, acme, settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.allow_model_paths = False
    settings.allow_hub_models = False
    folder = tmp_path / "some-model"
    folder.mkdir()
    file_id = _input(client, acme, tmp_path)
    attempts = [
        {"op": "semantic_dedup", "model": str(folder)},
        {"op": "semantic_dedup", "model": "sentence-transformers/all-MiniLM-L6-v2"},
        {"op": "label_quality", "encoder": str(folder)},
        {"op": "length", "unit": "tokens", "tokenizer": str(EXAMPLES)},
        {"op": "pii_redact", "spacy_model": str(folder)},
    ]
    for step in attempts:
        res = _create(client, acme, file_id, {"name": "probe", "steps": [step]})
        assert res.status_code == 400, (step, res.text)
    ok = {"op": "length", "unit": "tokens", "tokenizer": "minilm-l6", "min": 1}
    assert _create(client, acme, file_id, {"name": "ok", "steps": [ok]}).status_code == 200
    settings.allow_model_paths = True
    step = {"op": "semantic_dedup", "model": str(folder)}
    assert _create(client, acme, file_id, {"name": "op", "steps": [step]}).status_code == 200


def test_yaml_aliases_refused_in_tenant_recipes(client, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Aliases are how a small YAML text expands into a huge tree (billion laughs); a recipe
    # never needs them, so a tenant's recipe may not use them, not even harmlessly.
    file_id = _input(client, acme, tmp_path)
    text = (
        "name: aliases\nsteps:\n  - op: blocklist\n    words: &w [spam, scam]\n"
        "  - op: blocklist\n    words: *w\n"
    )
    res = _create(client, acme, file_id, text)
    assert res.status_code == 400, res.text
    assert "alias" in res.json()["error"]["message"].lower()
