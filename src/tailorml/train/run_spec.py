"""What a training process is asked to run (``RunSpec``), as a JSON file.

``python -m tailorml.train.run SPEC.json`` trains from one of these: the
``TrainSpec``, the base model already materialized (its folder and what it
can train), the record files and where to write. The platform's worker
writes it into the job's folder; a person can write one by hand.

The JSON mirrors the dataclasses field for field: the codec below walks
``dataclasses.fields`` and the field annotations, so a field added to
``TrainSpec`` or ``MaterializedModel`` travels without touching this file,
and a file that does not fit is refused with every problem at once. The
same codec carries ``TrainResult`` back in the run's ``result`` event.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from tailorml.errors import InvalidRequestError
from tailorml.models.sources import MaterializedModel
from tailorml.records import Task
from tailorml.train.spec import TrainSpec

T = TypeVar("T")


@dataclass
class RunSpec:
    """One training run: what to train, on what, from which base, and where to write it."""

    train: TrainSpec
    base: MaterializedModel
    training_file: Path  # JSONL records, read with tailorml.records.read_records
    out_dir: Path  # checkpoints/ while it runs, model/ when it is done
    validation_file: Path | None = None  # None: a share of the training records (valid_fraction)
    task: Task | None = None  # the records' format; None: fixed by the first line
    resume_from: Path | None = None  # a checkpoint folder of an earlier run of this spec
    judge: Path | None = None  # a chat model's folder: the report judges answers pairwise


def to_json_value(value: Any) -> Any:
    """A dataclass (nested ones included) as plain JSON values: paths as strings, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    return value


def from_json_value(cls: type[T], data: Any, what: str) -> T:
    """``cls`` rebuilt from ``to_json_value``'s output; every mismatch reported in one error."""
    problems: list[str] = []
    value = _decode(cls, data, "", problems)
    if problems:
        raise InvalidRequestError(
            f"{what} does not fit {cls.__name__}: " + "; ".join(problems) + ". "
            f"Write it with tailorml.train.run_spec (to_json_value of a {cls.__name__})."
        )
    return value  # type: ignore[no-any-return]


def write_run_spec(spec: RunSpec, path: Path) -> Path:
    """Write ``spec`` to ``path`` atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_json_value(spec), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_run_spec(path: Path) -> RunSpec:
    """The ``RunSpec`` in ``path``; a missing, unparsable or ill-fitting file is a clear error."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidRequestError(
            f"The run spec {path} does not exist; pass the JSON file write_run_spec wrote."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(
            f"The run spec {path.name} is not JSON ({exc}); write it with write_run_spec."
        ) from None
    return from_json_value(RunSpec, data, f"The run spec {path.name}")


def _shown(value: Any) -> str:
    """A value as a problem quotes it: short, so a wrong 10 MB field does not fill the error."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _decode(tp: Any, value: Any, where: str, problems: list[str]) -> Any:
    """``value`` as type ``tp``; a mismatch is appended to ``problems`` (and None returned)."""
    origin, args = get_origin(tp), get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _decode_dataclass(tp, value, where, problems)
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        if len(options) == 1:
            return _decode(options[0], value, where, problems)
        raise TypeError(f"the run spec codec has no rule for {tp} (at {where})")
    if origin is Literal:
        if value in args:
            return value
        choices = ", ".join(repr(a) for a in args)
        problems.append(f"{where} must be one of {choices}, got {_shown(value)}")
        return None
    if origin in (list, tuple):
        if not isinstance(value, list):
            problems.append(f"{where} must be a list, got {type(value).__name__}")
            return None
        items = [_decode(args[0], v, f"{where}[{i}]", problems) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            problems.append(f"{where} must be an object, got {type(value).__name__}")
            return None
        return dict(value)
    if tp is Any:
        return value
    if tp in _SCALARS:
        return _decode_scalar(tp, value, where, problems)
    raise TypeError(f"the run spec codec has no rule for {tp} (at {where})")


# JSON spelling -> what is accepted: JSON has one number type, so an int is a fine float;
# a bool is a JSON true/false and never a number.
_SCALARS: dict[Any, str] = {
    str: "a string",
    Path: "a path (a string)",
    bool: "true or false",
    int: "an integer",
    float: "a number",
}


def _decode_scalar(tp: Any, value: Any, where: str, problems: list[str]) -> Any:
    if isinstance(value, bool):
        ok = tp is bool
    elif tp is float:
        ok = isinstance(value, int | float)
    else:
        ok = isinstance(value, str if tp is Path else tp)
    if not ok:
        problems.append(f"{where} must be {_SCALARS[tp]}, got {_shown(value)}")
        return None
    if tp is Path:
        return Path(value)
    return float(value) if tp is float else value


def _decode_dataclass(cls: type, value: Any, where: str, problems: list[str]) -> Any:
    """A dataclass from an object: unknown and missing fields are problems, like wrong types."""
    if not isinstance(value, dict):
        problems.append(f"{where or 'the top level'} must be an object, got {type(value).__name__}")
        return None
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    for key in sorted(value.keys() - fields.keys()):
        problems.append(f"{prefix}{key} is not a field of {cls.__name__}")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name in value:
            values[name] = _decode(hints[name], value[name], prefix + name, problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{prefix}{name} is missing")
    # Once anything is wrong the result is thrown away: do not build half-filled objects.
    return None if problems else cls(**values)
