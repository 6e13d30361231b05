"""Engine generation on the tiny decoder: reference greedy output, streaming, stops, limits."""

from __future__ import annotations

import threading

import pytest

from tailorml.errors import ContextLengthExceededError, InvalidRequestError
from tailorml.registry import lookup
from tailorml.serve import Engine, ModelRef
from tailorml.serve.torch_backend import TorchBackend

from .conftest import TinyModels, questions, sentences


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_torch_backend_is_registered() -> None:
    assert lookup("serving_backend", "torch") is TorchBackend


def test_greedy_matches_transformers_generate(
    engine: Engine, decoder_ref: ModelRef, tiny: TinyModels
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompt = questions(3)[2]
    out = engine.complete(decoder_ref, prompt, max_tokens=12, temperature=0)
    tok = AutoTokenizer.from_pretrained(tiny.decoder)
    model = AutoModelForCausalLM.from_pretrained(tiny.decoder).eval()
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        ref = model.generate(ids, do_sample=False, max_new_tokens=12, eos_token_id=[2])
    new = ref[0, ids.shape[1] :].tolist()
    assert out.text == tok.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert (out.prompt_tokens, out.completion_tokens) == (ids.shape[1], len(new))
    assert out.finish_reason == ("stop" if new[-1] == 2 else "length")


@pytest.mark.parametrize("temperature,seed", [(0, None), (1.0, 7), (1.3, 11)])
def test_stream_joins_to_the_non_streamed_answer(
    engine: Engine, decoder_ref: ModelRef, temperature: float, seed: int | None
) -> None:
    messages = ask(questions(1)[0])
    whole = engine.chat(decoder_ref, messages, max_tokens=24, temperature=temperature, seed=seed)
    deltas = list(
        engine.stream_chat(decoder_ref, messages, max_tokens=24, temperature=temperature, seed=seed)
    )
    assert "".join(d.text for d in deltas) == whole.text
    assert [d.finish_reason for d in deltas[:-1]] == [None] * (len(deltas) - 1)
    last = deltas[-1]
    assert (last.finish_reason, last.prompt_tokens, last.completion_tokens) == (
        whole.finish_reason,
        whole.prompt_tokens,
        whole.completion_tokens,
    )
    assert whole.prompt_tokens == engine.count_tokens(decoder_ref, messages)


def test_seed_makes_sampling_reproducible(engine: Engine, decoder_ref: ModelRef) -> None:
    prompt = questions(2)[1]
    first = engine.complete(decoder_ref, prompt, max_tokens=16, temperature=1.0, seed=3)
    again = engine.complete(decoder_ref, prompt, max_tokens=16, temperature=1.0, seed=3)
    other = engine.complete(decoder_ref, prompt, max_tokens=16, temperature=1.0, seed=4)
    assert first == again
    assert first.text != other.text


def test_stop_string_cuts_the_text_and_never_leaks(engine: Engine, decoder_ref: ModelRef) -> None:
    prompt = questions(4)[3]
    options = {"max_tokens": 30, "temperature": 1.0, "seed": 5}
    full = engine.complete(decoder_ref, prompt, **options)
    assert full.finish_reason == "length" and len(full.text) > 20
    stop = full.text[12:16]
    cut = full.text.index(stop)
    stopped = engine.complete(decoder_ref, prompt, stop=[stop], **options)
    assert stopped.text == full.text[:cut]
    assert stopped.finish_reason == "stop"
    assert stopped.completion_tokens < full.completion_tokens
    deltas = list(engine.stream_complete(decoder_ref, prompt, stop=stop, **options))
    assert "".join(d.text for d in deltas) == full.text[:cut]
    assert deltas[-1].finish_reason == "stop"


def test_context_length_exceeded_reads_like_openai(tiny: TinyModels, engine: Engine) -> None:
    small = ModelRef(key="tiny-64", path=tiny.decoder, architecture="decoder", context_length=64)
    messages = ask(" ".join(questions(24)))  # about 150 tokens
    prompt_tokens = engine.count_tokens(small, messages)
    assert prompt_tokens > 64
    with pytest.raises(ContextLengthExceededError) as err:
        engine.chat(small, messages, max_tokens=10)
    assert err.value.param == "messages" and err.value.code == "context_length_exceeded"
    assert err.value.message == (
        f"This model's maximum context length is 64 tokens. However, you requested "
        f"{prompt_tokens + 10} tokens ({prompt_tokens} in the messages, 10 in the completion). "
        "Please reduce the length of the messages or completion."
    )
    # A prompt that fits alone but not with max_tokens is refused too, before any stream.
    prompt = sentences(2)[1]  # "Artificial Intelligence is the branch of ..." (about 20 tokens)
    assert 10 < engine.count_tokens(small, prompt) < 64
    with pytest.raises(ContextLengthExceededError, match="in the prompt") as err:
        engine.stream_complete(small, prompt, max_tokens=60)
    assert err.value.param == "prompt"
    # Without max_tokens the answer is capped by the room left.
    out = engine.complete(small, prompt, temperature=0)
    assert out.prompt_tokens + out.completion_tokens <= 64


def test_bad_options_and_wrong_model_kind_are_refused(
    engine: Engine, decoder_ref: ModelRef, encoder_ref: ModelRef
) -> None:
    messages = ask(questions(1)[0])
    with pytest.raises(InvalidRequestError) as err:
        engine.chat(decoder_ref, messages, temperature=3)
    assert err.value.param == "temperature"
    with pytest.raises(InvalidRequestError) as err:
        engine.chat(decoder_ref, messages, max_tokens=0)
    assert err.value.param == "max_tokens"
    with pytest.raises(InvalidRequestError) as err:
        engine.chat(decoder_ref, [{"content": "no role"}])
    assert err.value.param == "messages"
    with pytest.raises(InvalidRequestError, match="cannot generate") as err:
        engine.chat(encoder_ref, messages)
    assert err.value.param == "model"


def test_two_threads_on_one_model_get_their_own_answers(
    engine: Engine, decoder_ref: ModelRef
) -> None:
    prompts = questions(6)[4:6]
    expected = [engine.complete(decoder_ref, p, max_tokens=20, temperature=0) for p in prompts]
    assert expected[0].text != expected[1].text
    results: dict[int, list[str]] = {0: [], 1: []}

    def work(i: int) -> None:
        for _ in range(3):
            # streamed, so the two requests' decode steps interleave on the model
            pieces = engine.stream_complete(decoder_ref, prompts[i], max_tokens=20, temperature=0)
            results[i].append("".join(d.text for d in pieces))

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results[0] == [expected[0].text] * 3
    assert results[1] == [expected[1].text] * 3


def test_lru_keeps_max_loaded_and_unload_frees(tiny: TinyModels) -> None:
    engine = Engine(max_loaded=1)
    decoder = ModelRef.from_folder("d", tiny.decoder)
    encoder = ModelRef.from_folder("e", tiny.encoder)
    text = questions(1)[0]
    first = engine.complete(decoder, text, max_tokens=5, temperature=0)
    assert engine.loaded() == ["d"]
    engine.embed(encoder, [text])
    assert engine.loaded() == ["e"]
    assert engine.complete(decoder, text, max_tokens=5, temperature=0) == first
    assert engine.unload("d") is True
    assert engine.loaded() == []
    assert engine.unload("d") is False
