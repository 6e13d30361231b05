"""A run's data: check the records, hold out validation, encode, and say what was left out.

The recipe (``tailorml.train.loop``) calls ``prepare_data`` from its ``setup_data`` step;
``split_records`` is also how the evaluation report finds the held-out records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tailorml.errors import InvalidRequestError
from tailorml.models.sources import MaterializedModel
from tailorml.records import Record
from tailorml.train.spec import DEFAULT_MAX_LENGTH, TrainSpec
from tailorml.train.tasks import Example, TrainTask


@dataclass
class RunData:
    """The encoded examples of a run and what encoding them needed."""

    tokenizer: Any
    labels: list[str] | None
    max_length: int
    pad_id: int
    train: list[Example]
    valid: list[Example]
    held_out: str  # how the validation set came about, for the first event


def split_records(
    task: TrainTask,
    spec: TrainSpec,
    train_records: list[Record],
    valid_records: list[Record] | None,
) -> tuple[list[Record], list[Record], str]:
    """The records a run trains and validates on, and how the validation set came about.

    Without a validation file a seeded share of the training records is held
    out; the evaluation report calls this too, to score the same records.
    """
    if valid_records is not None:
        return (
            train_records,
            valid_records,
            (f"validation on the validation file's {len(valid_records)} records"),
        )
    train_part, valid_part = task.split(train_records, spec.valid_fraction, spec.seed)
    held = (
        f"no validation file, so {len(valid_part)} training records "
        f"({spec.valid_fraction:.0%}, seeded) are held out"
        if valid_part
        else "no validation file and too few records to hold any out: no validation, so "
        "no early stopping or best-model choice"
    )
    return train_part, valid_part, held


def prepare_data(
    task: TrainTask,
    spec: TrainSpec,
    base: MaterializedModel,
    train_records: list[Record],
    valid_records: list[Record] | None,
    say: Callable[[str, str], None],
) -> RunData:
    """Check, split and encode the records; report every record left out."""
    from transformers import AutoTokenizer

    task.check_records(train_records, "training_file")
    task.check_records(valid_records or [], "validation_file")
    labels = task.labels(train_records)
    line_of = {id(record): n for n, record in enumerate(train_records)}
    train_records, valid_records, held = split_records(task, spec, train_records, valid_records)
    max_length = min(spec.max_length or DEFAULT_MAX_LENGTH, base.context_length)
    if spec.max_length is not None and spec.max_length > base.context_length:
        say(
            f"max_length {spec.max_length} is over the context of {base.name}; "
            f"using {base.context_length}.",
            "warning",
        )
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    # Decoders often have no pad token; padding positions are masked out, so any id works.
    pad_id = tokenizer.pad_token_id
    pad_id = tokenizer.eos_token_id if pad_id is None else pad_id
    train_ex, skipped = task.encode(tokenizer, train_records, labels, max_length)
    for example in train_ex:  # the index into the training file, for quarantine reports
        example.record = line_of[id(train_records[example.record])]
    valid_ex, v_skipped = task.encode(tokenizer, valid_records, labels, max_length)
    cut = sum(1 for e in train_ex if e.truncated)
    if cut:
        say(
            f"{cut} of {len(train_ex)} training records are longer than max_length={max_length} "
            "tokens and were cut (their ends are not trained); raise max_length to keep them "
            "whole.",
            "warning",
        )
    for what, reasons in (("training", skipped), ("validation", v_skipped)):
        if reasons:
            say(f"Left out {len(reasons)} {what} record(s): {'; '.join(reasons[:5])}", "warning")
    if not train_ex:
        raise InvalidRequestError(
            "No training record is usable (see the warnings); raise max_length or fix the data.",
            param="training_file",
        )
    return RunData(tokenizer, labels, max_length, pad_id, train_ex, valid_ex, held)
