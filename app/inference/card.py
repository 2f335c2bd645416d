"""The model card: what a model expects as input and what its output means (API.md, "Models").

A card is YAML or JSON next to an ONNX / TorchScript file. It is validated at the edge, once, so the
runtime, preprocessing and postprocessing can trust it. Every problem is reported with the dotted path
of the field it concerns (``input.size: expected 2 numbers for classify, got 3``), all at once, so a
user can fix a card in one go.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from app.datasets.registry import adapters
from app.errors import InvalidInput

Task = Literal["classify", "segment2d", "segment3d", "detect2d", "embed"]
Layout = Literal["NCHW", "NHWC", "NCDHW"]
OutputKind = Literal["logits", "probabilities", "mask_logits", "mask", "boxes", "embedding"]

# Output kinds that make sense for each task.
TASK_OUTPUTS: dict[str, tuple[str, ...]] = {
    "classify": ("logits", "probabilities"),
    "segment2d": ("mask_logits", "probabilities", "mask"),
    "segment3d": ("mask_logits", "probabilities", "mask"),
    "detect2d": ("boxes",),
    "embed": ("embedding",),  # one vector per item (app.inference.vectors)
}
CARD_SUFFIXES = (".yaml", ".yml", ".json")


class ModelCardError(InvalidInput):
    """The card is unreadable or invalid; `problems` lists each one as ``field.path: what is wrong``."""

    def __init__(self, problems: list[str], source: str = "model card"):
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


# Bounds checked before anything is allocated: a card cannot ask for absurd tensors (a job holds a batch of
# `inference_batch` items of this size, so 4M values × 64 items = 1 GiB of float32 at most).
MAX_INPUT_SIDE = 2048
MAX_INPUT_VALUES = 4 * 1024 * 1024


class _Strict(BaseModel):
    # Unknown keys are refused so a typo ("windw") is reported instead of silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    layout: Layout = "NCHW"
    size: list[int] = Field(description="H, W (D, H, W for segment3d), in model pixels")
    channels: int = Field(ge=1, le=64)
    scale: float = Field(1.0, description="raw values are multiplied by this first (ignored for CT)")
    mean: list[float] | None = None
    std: list[float] | None = None
    window: list[float] | None = Field(None, description="CT only: [low, high] in HU mapped to [0, 1]")
    slices: int = Field(1, ge=1, le=15, description="CT only: key slice ± neighbours stacked as channels")
    overlap: float = Field(0.5, ge=0.0, lt=1.0, description="segment3d and tiled segment2d: fraction by which "
                           "sliding-window tiles overlap along each axis")
    tile: bool = Field(False, description="segment2d: run on tiles of `size` over the image at its own resolution "
                       "(blended, overlapping by `overlap`) instead of resizing the image to `size`")

    @field_validator("size")
    @classmethod
    def _positive_size(cls, value: list[int]) -> list[int]:
        if any(v < 1 for v in value):
            raise PydanticCustomError("size", "every size must be a positive number of pixels, got {size}",
                                      {"size": value})
        return value

    @field_validator("scale")
    @classmethod
    def _positive_scale(cls, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise PydanticCustomError("scale", "must be a positive finite number, got {scale}", {"scale": value})
        return value

    @field_validator("std")
    @classmethod
    def _positive_std(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(not (math.isfinite(v) and v > 0) for v in value):
            raise PydanticCustomError("std", "every std must be a positive finite number, got {std}", {"std": value})
        return value

    @field_validator("window")
    @classmethod
    def _window_range(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return value
        if len(value) != 2:
            raise PydanticCustomError("window", "expected [low, high] in HU, got {n} numbers", {"n": len(value)})
        if not (all(math.isfinite(v) for v in value) and value[1] > value[0]):
            raise PydanticCustomError("window", "high must be greater than low, got {window}", {"window": value})
        return value

    @field_validator("slices")
    @classmethod
    def _odd_slices(cls, value: int) -> int:
        if value % 2 == 0:
            raise PydanticCustomError("slices", "must be odd (the key slice ± the same number on each side), "
                                      "got {slices}", {"slices": value})
        return value

    @property
    def height(self) -> int:
        return self.size[-2]

    @property
    def width(self) -> int:
        return self.size[-1]

    @property
    def mean_values(self) -> list[float]:
        return self.mean if self.mean is not None else [0.0] * self.channels

    @property
    def std_values(self) -> list[float]:
        return self.std if self.std is not None else [1.0] * self.channels


class OutputSpec(_Strict):
    kind: OutputKind
    classes: list[str] | None = Field(None, max_length=1000)
    score_threshold: float = Field(0.5, ge=0.0, le=1.0, description="detect2d: boxes shown at or above this "
                                   "score (lower ones down to 0.05 are kept for FROC)")

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_text(cls, value: Any) -> Any:
        # YAML reads `classes: [0, 1]` as numbers; PCam labels are "0"/"1" (API.md, "Names").
        if isinstance(value, list):
            return [str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value]
        return value


class ModelCard(_Strict):
    name: str = Field(min_length=1, max_length=200)
    task: Task
    input: InputSpec
    output: OutputSpec
    applies_to: list[str] = Field(default_factory=list, description="dataset kinds this model is meant for")
    description: str | None = None
    version: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        problems = card_problems(self)
        if problems:
            raise PydanticCustomError("model_card", "{text}", {"text": "; ".join(problems), "problems": problems})
        return self

    @property
    def is_ct(self) -> bool:
        """The model reads Hounsfield units through a window (and ignores `scale`)."""
        return self.input.window is not None


def card_problems(card: ModelCard) -> list[str]:
    """Cross-field checks that single fields cannot make on their own."""
    problems: list[str] = []
    spec, task = card.input, card.task
    dims = 3 if task == "segment3d" else 2
    if len(spec.size) != dims:
        problems.append(f"input.size: expected {dims} numbers for {task}, got {len(spec.size)}")
    elif max(spec.size) > MAX_INPUT_SIDE:
        problems.append(f"input.size: at most {MAX_INPUT_SIDE} model pixels per side, got {spec.size}")
    elif math.prod(spec.size) * spec.channels > MAX_INPUT_VALUES:
        problems.append(f"input.size: {' × '.join(map(str, spec.size))} × {spec.channels} channels is "
                        f"{math.prod(spec.size) * spec.channels:,} values per item; at most {MAX_INPUT_VALUES:,} "
                        "(a batch of them must fit in memory)")
    if task == "segment3d" and spec.layout != "NCDHW":
        problems.append(f"input.layout: segment3d needs NCDHW, got {spec.layout}")
    if task != "segment3d" and spec.layout == "NCDHW":
        problems.append(f"input.layout: NCDHW is only for segment3d, not {task}")
    for name in ("mean", "std"):
        values = getattr(spec, name)
        if values is not None and len(values) != spec.channels:
            problems.append(f"input.{name}: expected {spec.channels} numbers (one per input.channels), "
                            f"got {len(values)}")
    problems += applies_to_problems(card)
    if spec.slices > 1:
        if spec.window is None:
            problems.append("input.slices: neighbour slices are CT only and need input.window")
        elif spec.channels != spec.slices:
            problems.append(f"input.channels: expected {spec.slices} (one per slice of input.slices), "
                            f"got {spec.channels}")
    if spec.tile and task != "segment2d":
        problems.append(f"input.tile: only segment2d models run on tiles, not {task}")
    allowed = TASK_OUTPUTS[task]
    if card.output.kind not in allowed:
        problems.append(f"output.kind: {card.output.kind!r} does not fit task {task} "
                        f"(expected {' or '.join(allowed)})")
    classes = card.output.classes
    if task == "classify" and (not classes or len(classes) < 2):
        problems.append("output.classes: classify needs the class names, at least 2, in output order")
    if classes is not None and len(set(classes)) != len(classes):
        problems.append("output.classes: names must be unique")
    return problems


def applies_to_problems(card: ModelCard) -> list[str]:
    """`applies_to` against what the adapters declare: every kind known, and none whose items the card's input or
    task cannot take (a CT window needs Hounsfield units, segment3d volumes, a 2-D task 2-D images)."""
    known = adapters()
    problems: list[str] = []
    if unknown := [k for k in card.applies_to if k not in known]:
        problems.append(f"applies_to: unknown dataset kind{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(map(repr, unknown))}; known kinds: {', '.join(known)}")
    kinds = [known[k] for k in card.applies_to if k in known]
    if card.input.window is not None and (not_ct := sorted(a.kind for a in kinds if not a.values_are_hu)):
        problems.append(f"input.window: a CT window cannot apply to {', '.join(not_ct)} (8-bit images); "
                        "remove it or those dataset kinds from applies_to")
    if card.task == "segment3d" and (flat := [a.kind for a in kinds if not a.has_volumes]):
        problems.append(f"applies_to: a segment3d model segments volumes, but {', '.join(flat)} items are 2-D "
                        "images; remove those dataset kinds or use a 2-D task")
    if card.task in ("segment2d", "detect2d", "embed") and (volumes := [a.kind for a in kinds if a.volume_only]):
        problems.append(f"applies_to: a {card.task} model takes 2-D images, but {', '.join(volumes)} items are "
                        "volumes; remove those dataset kinds or use a segment3d model")
    return problems


def _loc_text(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _problems_from(error: ValidationError) -> list[str]:
    problems: list[str] = []
    for item in error.errors(include_url=False):
        ctx = item.get("ctx") or {}
        if item["type"] == "model_card" and "problems" in ctx:
            problems.extend(ctx["problems"])
            continue
        where = _loc_text(tuple(item["loc"]))
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field (check its spelling against the model card schema)"
        problems.append(f"{where}: {message}" if where else message)
    return problems


def card_from_dict(data: Any, source: str = "model card") -> ModelCard:
    """Validate already-parsed card data; raises ModelCardError listing every problem by field."""
    if not isinstance(data, Mapping):
        raise ModelCardError([f"expected a mapping of fields (name, task, input, output), got {type(data).__name__}"],
                             source)
    try:
        return ModelCard.model_validate(dict(data))
    except ValidationError as exc:
        raise ModelCardError(_problems_from(exc), source) from None


def card_from_text(text: str | bytes, fmt: str | None = None, source: str = "model card") -> ModelCard:
    """Parse a card's text: `fmt` "json" or "yaml"; None tries JSON then YAML (an upload without a name)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelCardError(["not UTF-8 text"], source) from None
    if fmt not in (None, "json", "yaml"):
        raise ValueError(f"fmt must be 'json', 'yaml' or None, not {fmt!r}")
    if fmt == "json" or (fmt is None and text.lstrip().startswith("{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelCardError([f"line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}"], source) from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
            reason = getattr(exc, "problem", None) or str(exc)
            raise ModelCardError([f"{where}invalid YAML: {reason}"], source) from None
    return card_from_dict(data, source)


def load_card(path: str | Path) -> ModelCard:
    """Read a card file (.yaml/.yml as YAML, .json as JSON, anything else sniffed)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelCardError([f"cannot read the file: {exc.strerror or exc}"], str(path)) from None
    suffix = path.suffix.lower()
    fmt = "json" if suffix == ".json" else "yaml" if suffix in (".yaml", ".yml") else None
    return card_from_text(raw, fmt, source=str(path))
