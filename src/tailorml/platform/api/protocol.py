"""Request bodies of the /v1 routes (pydantic), shaped after OpenAI's.

Fields OpenAI defines and TailorML does not use yet are accepted and
ignored (so the official SDKs work unchanged); fields with a value we cannot
honour (``n`` over 16, say) are refused with a clear error.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from tailorml.errors import InvalidRequestError
from tailorml.serve.rerank import MAX_DOCUMENTS as MAX_RERANK_DOCUMENTS
from tailorml.train.preference import DEFAULT_BETA

Auto = Literal["auto"]

# Bounds on what a fine-tuning job stores: the model reference fits the
# 255-character model columns, ids are 40 characters (a little slack for a
# clear "no such file" rather than a length error), and metadata follows
# OpenAI's limits (16 pairs, 64-character keys, 512-character values).
MAX_MODEL_CHARS = 255
MAX_ID_CHARS = 64
MAX_SUFFIX_CHARS = 64
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_INPUTS = 2048  # OpenAI's limit on inputs per embeddings request
MAX_STOPS = 4  # OpenAI's limit on stop sequences
MAX_STOP_CHARS = 256
MAX_NEW_TOKENS = 65536  # above any served model's context: a bound, not a promise
MAX_MESSAGES = 2048  # messages in one chat request, checked before templating
MAX_BETA = 2.0  # above it the model barely leaves the base; a bound, not a recommendation


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_epochs: int | Auto = Field("auto", description="Passes over the training data (1-50).")
    batch_size: int | Auto = Field("auto", description="Examples per step (1-256).")
    learning_rate_multiplier: float | Auto = Field(
        "auto", description="Scales the base learning rate."
    )


class LoraOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lora_r: int = Field(8, ge=1, le=256)
    lora_alpha: int = Field(16, ge=1, le=1024)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    lora_target_modules: list[StrictStr] | None = Field(
        None, max_length=64, description="Module names to adapt (default: the model's usual ones)."
    )

    @field_validator("lora_target_modules")
    @classmethod
    def _short_names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not 1 <= len(name) <= 128 for name in value):
            raise ValueError("each module name must have 1-128 characters")
        return value


class DifferentialPrivacyOptions(BaseModel):
    """DP-SGD (classification only): the model is (epsilon, delta)-DP with respect to one
    training record (docs/concepts.md, "Differential privacy")."""

    model_config = ConfigDict(extra="forbid")
    epsilon: float = Field(gt=0.0, le=100.0, description="The privacy budget (1-10 is usual).")
    delta: float | None = Field(
        None, gt=0.0, lt=1.0, description="Below 1/N for N training records; default 1/(10 N)."
    )


class TrainingOptions(BaseModel):
    """TailorML extension: finer control of the training run."""

    model_config = ConfigDict(extra="forbid")
    max_length: int | None = Field(None, ge=8, description="Tokens per example (longer are cut).")
    warmup_ratio: float | None = Field(None, ge=0.0, lt=1.0)
    weight_decay: float | None = Field(None, ge=0.0)
    eval_every: int | None = Field(None, ge=1, description="Steps between validations.")
    checkpoint_every: int | None = Field(None, ge=1, description="Steps between checkpoints.")
    gradient_accumulation_steps: int | None = Field(
        None, ge=1, le=256, description="Batches per optimizer step (a larger effective batch)."
    )
    packing: bool | None = Field(
        None, description="Decoders: pack several sequences into a row instead of padding."
    )
    early_stopping_patience: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="Evaluations without a better validation loss before the run stops "
        "(default 3; 0 never stops early). The result is the best evaluated model either way.",
    )
    judge_model: StrictStr | None = Field(
        None,
        max_length=MAX_MODEL_CHARS,
        description="Chat and completion jobs: a chat model (yours or the catalog's) that "
        "judges the base's and the tuned answers pairwise in the evaluation report.",
    )
    processes: int | None = Field(
        None,
        ge=1,
        le=8,
        description="Processes that train together (torchrun, DDP; one per GPU on a GPU "
        "machine). The batch size stays the global batch, split over them (default: the "
        "operator's TAILOR_TRAIN_PROCESSES, 1 unless set).",
    )
    metrics: list[StrictStr] | None = Field(
        None,
        max_length=16,
        description="Classification: more figures at every evaluation step, as valid_<name> "
        "(accuracy, macro_f1, weighted_f1, balanced_accuracy).",
    )
    differential_privacy: DifferentialPrivacyOptions | None = Field(
        None,
        description="Classification: train with DP-SGD to this (epsilon, delta); the job's "
        "metrics report epsilon_spent.",
    )


class DpoHyperparameters(Hyperparameters):
    """OpenAI's ``method.dpo.hyperparameters``; the values set here take the place of the
    top-level ``hyperparameters``."""

    beta: float | Auto = Field(
        "auto",
        description=f"How strongly the model is held to the base (above 0, at most {MAX_BETA:g}; "
        f'"auto": {DEFAULT_BETA:g}, as with OpenAI).',
    )

    @field_validator("beta")
    @classmethod
    def _beta_range(cls, value: float | str) -> float | str:
        if value != "auto" and not 0.0 < float(value) <= MAX_BETA:
            raise ValueError(f'beta must be "auto" or a number above 0, at most {MAX_BETA:g}')
        return value


class DpoOptions(BaseModel):
    """OpenAI's ``method.dpo``, plus TailorML's ``tuning``."""

    model_config = ConfigDict(extra="forbid")
    hyperparameters: DpoHyperparameters | None = None
    tuning: Literal["lora", "full"] | None = Field(
        None, description="TailorML extension: LoRA (the default) or a full fine-tune."
    )


class Method(BaseModel):
    """OpenAI's ``method`` plus TailorML's choices: ``full`` or ``lora`` training."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["supervised", "full", "lora", "dpo"] = "supervised"
    lora: LoraOptions | None = None
    training: TrainingOptions | None = None
    supervised: dict[str, Any] | None = None
    dpo: DpoOptions | None = None


class FineTuningJobCreate(_Body):
    model: StrictStr = Field(min_length=1, max_length=MAX_MODEL_CHARS)
    training_file: StrictStr = Field(min_length=1, max_length=MAX_ID_CHARS)
    validation_file: StrictStr | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    suffix: StrictStr | None = Field(None, max_length=MAX_SUFFIX_CHARS)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    metadata: dict[StrictStr, StrictStr] | None = Field(None, max_length=MAX_METADATA_PAIRS)

    @field_validator("metadata")
    @classmethod
    def _metadata_sizes(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key, item in (value or {}).items():
            if not 1 <= len(key) <= MAX_METADATA_KEY_CHARS:
                raise ValueError(f"keys must have 1-{MAX_METADATA_KEY_CHARS} characters")
            if len(item) > MAX_METADATA_VALUE_CHARS:
                raise ValueError(
                    f"the value of {key!r} is over {MAX_METADATA_VALUE_CHARS} characters"
                )
        return value


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(
                part.get("text", "") for part in self.content if part.get("type") == "text"
            )
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class _Sampling(_Body):
    model: StrictStr
    max_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_NEW_TOKENS)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: StrictStr | list[StrictStr] | None = Field(None, max_length=MAX_STOPS)

    @field_validator("stop")
    @classmethod
    def _short_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        items = [value] if isinstance(value, str) else value or []
        if any(len(item) > MAX_STOP_CHARS for item in items):
            raise ValueError(f"each stop sequence must have at most {MAX_STOP_CHARS} characters")
        return value

    seed: int | None = None
    n: int = Field(1, ge=1, le=16, description="Choices to generate (at most 16 here).")
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    stream: bool = False
    stream_options: StreamOptions | None = None

    def stop_list(self) -> list[str] | None:
        if self.stop is None:
            return None
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def engine_options(self) -> dict[str, Any]:
        """The sampling options as the serving engine's keyword arguments."""
        return {
            "max_tokens": self.token_limit(),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": self.stop_list(),
            "seed": self.seed,
            "n": self.n,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
        }


class ResponseFormat(BaseModel):
    """``text``, ``json_object``, or ``json_schema`` with ``{"name", "schema", "strict"}``."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None

    def engine_options(self) -> dict[str, Any]:
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidRequestError(
                "top_logprobs needs logprobs: true; set both, or drop top_logprobs.",
                param="top_logprobs",
            )
        return super().engine_options() | {
            "logprobs": (self.top_logprobs or 0) if self.logprobs else None,
            "response_format": self.response_format.model_dump() if self.response_format else None,
        }


class CompletionRequest(_Sampling):
    prompt: StrictStr
    # The legacy API's logprobs: how many alternatives per token (OpenAI allows up to 5).
    logprobs: int | None = Field(None, ge=0, le=5)

    def engine_options(self) -> dict[str, Any]:
        return super().engine_options() | {"logprobs": self.logprobs}


def _bounded_inputs(value: str | list[str]) -> str | list[str]:
    if isinstance(value, list) and len(value) > MAX_INPUTS:
        raise ValueError(
            f"at most {MAX_INPUTS} inputs per request, got {len(value)}; send them in batches"
        )
    return value


class ExplainOptions(BaseModel):
    """TailorML extension: why a model answered as it did."""

    model_config = ConfigDict(extra="forbid")
    attributions: bool = Field(
        False, description="Classifications: each token's integrated-gradients attribution."
    )
    neighbors: int | None = Field(
        None,
        ge=1,
        le=50,
        description="The k training records nearest each input in the model's own "
        "representation (fine-tuned models).",
    )


class EmbeddingRequest(_Body):
    model: StrictStr
    input: StrictStr | list[StrictStr] = Field(min_length=1)
    _inputs = field_validator("input")(_bounded_inputs)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    truncate: bool = Field(
        False, description="TailorML extension: cut inputs longer than the context."
    )
    explain: ExplainOptions | None = Field(
        None,
        description='TailorML extension: {"neighbors": k} adds each input\'s k nearest '
        "training records.",
    )


class RerankDocument(_Body):
    text: StrictStr


class RerankRequest(_Body):
    """TailorML extension, shaped like the rerank APIs of Cohere, Jina and vLLM."""

    model: StrictStr
    query: StrictStr
    documents: list[StrictStr | RerankDocument] = Field(
        min_length=1, description='Texts, or objects {"text": ...}, to order by relevance.'
    )
    top_n: int | None = Field(None, ge=1, description="Return only the best top_n results.")
    return_documents: bool = Field(True, description="Give each result's document text back.")
    truncate: bool = Field(False, description="Cut query + document pairs longer than the context.")

    @field_validator("documents")
    @classmethod
    def _bounded(cls, value: list[str | RerankDocument]) -> list[str | RerankDocument]:
        if len(value) > MAX_RERANK_DOCUMENTS:
            raise ValueError(
                f"at most {MAX_RERANK_DOCUMENTS} documents per request, got {len(value)}; send "
                "them in several requests and merge the scores"
            )
        return value

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


class ClassificationRequest(_Body):
    model: StrictStr
    input: StrictStr | list[StrictStr] = Field(min_length=1)
    _inputs = field_validator("input")(_bounded_inputs)
    truncate: bool = Field(
        False, description="Cut inputs longer than the context instead of refusing them."
    )
    explain: bool | ExplainOptions = Field(
        False,
        description="true: each token's integrated-gradients attribution to the predicted "
        'label (at most 16 inputs); {"attributions": bool, "neighbors": k} to choose, k '
        "training records nearest each input.",
    )

    def attributions(self) -> bool:
        explain = self.explain
        return explain is True or (isinstance(explain, ExplainOptions) and explain.attributions)

    def neighbors(self) -> int | None:
        return self.explain.neighbors if isinstance(self.explain, ExplainOptions) else None
