"""DP-SGD (opacus): the accountant's noise, the epsilon spent, Poisson batches, per-record
gradients and their clipping, LoRA, exact resume with the accountant, and every refusal."""

from __future__ import annotations

import pytest
import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from tailorml.errors import InvalidRequestError, JobCancelledError
from tailorml.train.batching import steps_per_epoch
from tailorml.train.checkpoints import list_checkpoints
from tailorml.train.loop import TrainSpec, train
from tailorml.train.privacy import EPSILON_TOLERANCE, PrivateRecipe, check_private_model
from tailorml.train.spec import PrivacySpec

from .conftest import EventLog, glaive_chats, spam_records
from .test_loop import StopAfter, final_weights

N_TRAIN, BATCH = 60, 8  # 8 Poisson batches an epoch, sample rate 1/8


def dp_spec(epsilon: float = 4.0, delta: float | None = None, **overrides) -> TrainSpec:  # type: ignore[no-untyped-def]
    values = dict(
        task="classification",
        method="full",
        n_epochs=2,
        batch_size=BATCH,
        learning_rate=1e-3,
        checkpoint_every=4,
        early_stopping_patience=None,
        differential_privacy=PrivacySpec(epsilon=epsilon, delta=delta, noise_seed=7),
    )
    values.update(overrides)
    return TrainSpec(**values)  # type: ignore[arg-type]


def _recipe(spec: TrainSpec, base, tmp_path, n: int = N_TRAIN) -> PrivateRecipe:  # type: ignore[no-untyped-def]
    recipe = PrivateRecipe(spec, base, tmp_path, on_event=EventLog())
    recipe.setup_data(spam_records("train", n), [])
    torch.manual_seed(0)
    recipe.prepare(steps_per_epoch(n, spec.batch_size) * spec.n_epochs)
    recipe.model.train()  # as the loop trains it
    return recipe


def _inner(recipe: PrivateRecipe) -> torch.optim.Optimizer:
    """The AdamW under opacus' DPOptimizer and accelerate's wrapper."""
    return recipe.optimizer.original_optimizer.optimizer  # type: ignore[attr-defined, no-any-return]


def test_the_noise_is_opacus_and_the_run_spends_its_epsilon(tiny_encoder, tmp_path):
    events = EventLog()
    result = train(dp_spec(), tiny_encoder, spam_records("train", N_TRAIN),
                   spam_records("dev", 20), tmp_path, on_event=events)  # fmt: skip
    delta = 1 / (10 * N_TRAIN)
    sigma = get_noise_multiplier(target_epsilon=4.0, target_delta=delta, sample_rate=1 / 8,
                                 epochs=2, accountant="rdp", epsilon_tolerance=EPSILON_TOLERANCE)  # fmt: skip
    metrics = result.metrics
    assert metrics["dp_noise_multiplier"] == sigma and metrics["dp_delta"] == delta
    assert result.steps == 16
    accountant = RDPAccountant()
    accountant.history = [(sigma, 1 / 8, 16)]
    assert metrics["epsilon_spent"] == pytest.approx(accountant.get_epsilon(delta=delta))
    assert 4.0 - EPSILON_TOLERANCE <= metrics["epsilon_spent"] <= 4.0
    assert not any(k.startswith("base_epsilon") for k in metrics)
    spent = [m["epsilon_spent"] for m in events.metrics if "epsilon_spent" in m]
    assert spent[0] == 0.0 and spent == sorted(spent) and spent[-1] == metrics["epsilon_spent"]
    assert len(spent) > 3  # at every evaluation
    said = " ".join(events.messages)
    assert f"noise multiplier {sigma:.4g}" in said
    assert f"(ε=4, δ={delta:.3g})-DP with respect to one training record" in said
    assert f"Privacy spent: ε={metrics['epsilon_spent']:.4g}" in said


def test_batches_are_seeded_poisson_samples(tiny_encoder, tmp_path):
    recipe = _recipe(dp_spec(), tiny_encoder, tmp_path / "a")
    epochs = [recipe.epoch_batches(e) for e in range(40)]
    assert all(len(batches) == 8 for batches in epochs)  # steps_per_epoch, as accounted
    sizes = [len(b) for batches in epochs for b in batches]
    assert len(set(sizes)) > 4  # not fixed-size batches
    assert sum(sizes) / len(sizes) == pytest.approx(N_TRAIN / 8, rel=0.1)
    # Records are drawn independently: some appear twice in an epoch, some never.
    first = [i for b in epochs[0] for i in b]
    assert len(set(first)) < len(first) or len(set(first)) < N_TRAIN
    assert recipe.epoch_batches(3) == epochs[3] and epochs[3] != epochs[4]
    again = _recipe(dp_spec(), tiny_encoder, tmp_path / "b")
    assert again.epoch_batches(0) == epochs[0]  # the same noise_seed
    secret = dp_spec(differential_privacy=PrivacySpec(epsilon=4.0))  # seed from the OS
    assert _recipe(secret, tiny_encoder, tmp_path / "c").epoch_batches(0) != epochs[0]


def test_per_record_gradients_are_each_records_own(tiny_encoder, tmp_path):
    recipe = _recipe(dp_spec(), tiny_encoder, tmp_path)
    for module in recipe.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # so one record alone computes what it computed in the batch
    examples = recipe.data.train[:3]
    captured: dict[str, torch.Tensor] = {}

    def keep(optimizer, args, kwargs) -> None:  # type: ignore[no-untyped-def]
        for name, p in recipe.model.named_parameters():
            captured[name] = p.grad_sample.detach().clone()

    _inner(recipe).register_step_pre_hook(keep)
    recipe.train_step([examples])
    params = dict(recipe.model.named_parameters())
    for row, example in enumerate(examples):
        model = recipe.model
        model.zero_grad()
        batch = recipe._on_device(recipe.collate([example], recipe.pad))
        recipe.task.score(model, batch).loss.backward()
        for name in ("bert.embeddings.position_embeddings.weight", "classifier.weight",
                     "bert.encoder.layer.0.attention.self.query.weight"):  # fmt: skip
            torch.testing.assert_close(captured[name][row], params[name].grad, msg=name,
                                       rtol=1e-4, atol=1e-6)  # fmt: skip


def test_each_records_gradient_is_clipped(tiny_encoder, tmp_path):
    clip = 1e-4
    recipe = _recipe(dp_spec(max_grad_norm=clip), tiny_encoder, tmp_path)
    recipe.optimizer.noise_multiplier = 0.0  # no noise: what is left is the clipped sum
    seen: dict[str, torch.Tensor] = {}

    def measure(optimizer, args, kwargs) -> None:  # type: ignore[no-untyped-def]
        grads = [p for p in recipe.params]
        seen["update"] = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in grads]))
        per_record = torch.stack([p.grad_sample.flatten(1).norm(dim=1) for p in grads], dim=1)
        seen["raw"] = per_record.norm(dim=1)

    _inner(recipe).register_step_pre_hook(measure)
    rows = 8
    recipe.train_step([recipe.data.train[:rows]])
    bound = rows * clip / recipe.plan.expected_batch_size
    assert float(seen["update"]) <= bound * (1 + 1e-4)
    assert float(seen["update"]) > bound / 10  # the clipped gradients are there
    assert float(seen["raw"].min()) > 100 * clip  # and without clipping far larger


def test_an_empty_poisson_batch_is_a_noised_step(tiny_encoder, tmp_path):
    recipe = _recipe(dp_spec(warmup_ratio=0.0), tiny_encoder, tmp_path)
    before = {n: p.detach().clone() for n, p in recipe.model.named_parameters()}
    assert recipe.train_step([[]]) is None
    moved = [n for n, p in recipe.model.named_parameters() if not torch.equal(p, before[n])]
    assert moved  # the noise moved the weights
    assert recipe.accountant.history == [(recipe.plan.noise_multiplier, 1 / 8, 1)]


def test_lora_trains_only_its_adapters_privately(tiny_encoder, tmp_path):
    spec = dp_spec(method="lora", n_epochs=1, learning_rate=1e-2)
    recipe = _recipe(spec, tiny_encoder, tmp_path / "probe")
    has_samples: dict[str, bool] = {}

    def look(optimizer, args, kwargs) -> None:  # type: ignore[no-untyped-def]
        for name, p in recipe.model.named_parameters():
            has_samples[name] = getattr(p, "grad_sample", None) is not None

    _inner(recipe).register_step_pre_hook(look)
    recipe.train_step([recipe.data.train[:5]])
    trainable = {n for n, p in recipe.model.named_parameters() if p.requires_grad}
    # Per-record gradients of the adapters and the head only: opacus sees no frozen weight.
    assert {n for n, seen in has_samples.items() if seen} == trainable
    assert any("lora_" in n for n, p in recipe.model.named_parameters() if p.requires_grad)
    result = train(spec, tiny_encoder, spam_records("train", N_TRAIN), None, tmp_path / "run",
                   on_event=EventLog())  # fmt: skip
    assert (result.model_dir / "adapter_model.safetensors").is_file()
    assert 0 < result.metrics["epsilon_spent"] <= 4.0


def test_resume_is_exact_and_epsilon_keeps_counting(tiny_encoder, tmp_path):
    spec, records = dp_spec(), spam_records("train", N_TRAIN)
    whole = train(spec, tiny_encoder, records, None, tmp_path / "whole", on_event=EventLog())
    events = EventLog()
    with pytest.raises(JobCancelledError):
        train(spec, tiny_encoder, records, None, tmp_path / "parts", on_event=events,
              should_stop=StopAfter(events, 6))  # fmt: skip
    checkpoint = tmp_path / "parts" / "checkpoints" / "step-4"
    assert (checkpoint / "privacy.pt").is_file()
    resumed = train(spec, tiny_encoder, records, None, tmp_path / "parts", on_event=EventLog(),
                    resume_from=checkpoint)  # fmt: skip
    assert resumed.metrics["epsilon_spent"] == whole.metrics["epsilon_spent"]
    expected, got = final_weights(whole.model_dir), final_weights(resumed.model_dir)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6)
    # Without DP (or with another epsilon) a DP checkpoint is another run's.
    kept = list_checkpoints(tmp_path / "parts" / "checkpoints")[-1]
    for other in (None, PrivacySpec(epsilon=2.0, noise_seed=7)):
        with pytest.raises(InvalidRequestError, match="differential_privacy"):
            train(dp_spec(differential_privacy=other), tiny_encoder, records, None,
                  tmp_path / "x", on_event=EventLog(), resume_from=kept)  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epsilon": 0.0}, "epsilon must be above 0 and at most 100"),
        ({"epsilon": 101.0}, "epsilon must be above 0 and at most 100"),
        ({"delta": 1.5}, r"delta must be in \(0, 1/N\)"),
        ({"gradient_accumulation_steps": 2}, "raise batch_size instead"),
        ({"packing": True}, "packing cannot be combined"),
        ({"precision": "bf16"}, 'trains in "fp32"'),
    ],
)
def test_settings_dp_cannot_honour_are_refused(tiny_encoder, tmp_path, overrides, message):
    dp = {k: overrides.pop(k) for k in ("epsilon", "delta") if k in overrides}
    with pytest.raises(InvalidRequestError, match=message):
        train(dp_spec(**dp, **overrides), tiny_encoder, spam_records("train", 20), None,
              tmp_path, on_event=EventLog())  # fmt: skip


def test_dp_is_for_classifiers_only(tiny_decoder, tmp_path):
    spec = dp_spec(task="chat", method="lora", max_length=128)
    with pytest.raises(InvalidRequestError, match="trains the classification task only, not chat"):
        train(spec, tiny_decoder, glaive_chats(12, max_chars=400), None, tmp_path,
              on_event=EventLog())  # fmt: skip


def test_a_delta_of_one_over_n_or_more_is_refused(tiny_encoder, tmp_path):
    with pytest.raises(InvalidRequestError, match=r"below 1/N = 0\.0166667 for N = 60"):
        train(dp_spec(delta=1 / 60), tiny_encoder, spam_records("train", N_TRAIN),
              spam_records("dev", 10), tmp_path, on_event=EventLog())  # fmt: skip


def test_an_epsilon_no_noise_can_reach_is_refused(tiny_encoder, tmp_path):
    with pytest.raises(InvalidRequestError, match="No amount of noise .* Raise epsilon"):
        train(dp_spec(epsilon=0.005), tiny_encoder, spam_records("train", N_TRAIN), None,
              tmp_path, on_event=EventLog())  # fmt: skip


def test_layers_opacus_cannot_handle_are_refused() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    with pytest.raises(InvalidRequestError, match="BatchNorm"):
        check_private_model(model)
    check_private_model(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4)))
