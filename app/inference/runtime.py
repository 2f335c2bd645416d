"""Model runtimes: one loaded model on one device, checked against its card, run on prepared batches.

`OnnxModel` (onnxruntime) is the default; `TorchScriptModel` exists only when torch imports. Both
follow `InferenceRuntime`, and `open_model` picks one from `RUNTIMES` by file suffix, so callers never
branch on the model type. A runtime builds its session once and is reused for every batch
(onnxruntime's `run` is thread-safe).

Devices follow MEDVIEW_DEVICE (API.md): `auto` uses CUDA when the runtime has it and the CPU
otherwise; `cuda` / `cuda:N` insist on that GPU and fail with `DeviceUnavailable` when it is absent;
`cpu` never touches a GPU. `.device` reports the device actually used ("cpu" or "cuda:N").
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.errors import AppError, InvalidInput
from app.inference.card import ModelCard

log = logging.getLogger(__name__)

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")
_ONNX_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class DeviceUnavailable(AppError):
    """MEDVIEW_DEVICE asks for a device this machine or runtime does not have."""

    status_code = 503


class ModelLoadError(InvalidInput):
    """The model file is missing or not a model this runtime can load."""


class ModelCardMismatch(InvalidInput):
    """The model's graph contradicts its card (channels, size, layout, class count…); the message says how."""


class InferenceRuntime(Protocol):
    card: ModelCard
    device: str

    def check_against_card(self) -> None:
        """Raise ModelCardMismatch when the model cannot take the card's input or give its output."""
        ...

    def run(self, batch: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run a prepared batch (layout and size per the card); one array per model output."""
        ...


def parse_device(setting: str) -> tuple[str, int | None]:
    """`auto` / `cpu` / `cuda` / `cuda:N` → (kind, index); the index is None unless given."""
    match = _DEVICE_RE.match(setting.strip().lower())
    if not match or (match.group(2) is not None and match.group(1) != "cuda"):
        raise DeviceUnavailable(f"MEDVIEW_DEVICE must be auto, cpu, cuda or cuda:N, not {setting!r}")
    index = match.group(2)
    return match.group(1), int(index) if index is not None else None


def choose_onnx_providers(setting: str, available: Sequence[str]) -> list[str | tuple[str, dict[str, Any]]]:
    """onnxruntime providers for a device setting, given `onnxruntime.get_available_providers()`."""
    kind, index = parse_device(setting)
    has_cuda = CUDA_PROVIDER in available
    if kind == "cpu" or (kind == "auto" and not has_cuda):
        return [CPU_PROVIDER]
    if kind == "cuda" and not has_cuda:
        raise DeviceUnavailable(
            f"MEDVIEW_DEVICE={setting} asks for CUDA, but this onnxruntime has no CUDA provider (available: "
            f"{', '.join(available) or 'none'}); install onnxruntime-gpu with CUDA, or set MEDVIEW_DEVICE=auto or cpu"
        )
    return [(CUDA_PROVIDER, {"device_id": index or 0}), CPU_PROVIDER]


def _dim_text(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else (d or "?") for d in shape) + "]"


def _fixed(dim: Any) -> int | None:
    """A static dimension, or None when it is dynamic (a name, None, or ≤ 0)."""
    return dim if isinstance(dim, int) and dim > 0 else None


def card_input_shape(card: ModelCard, batch: int | None = None) -> list[int | None]:
    """The input shape the card promises, with the batch dimension first (None = any)."""
    spec = card.input
    if spec.layout == "NHWC":
        return [batch, *spec.size, spec.channels]
    return [batch, spec.channels, *spec.size]


def check_shapes(card: ModelCard, input_shape: Sequence[Any], output_shapes: Sequence[Sequence[Any]],
                 input_name: str = "input") -> None:
    """Compare a model's input/output shapes (dynamic dims as names or None) with its card."""
    spec = card.input
    expected = card_input_shape(card)
    if len(input_shape) != len(expected):
        raise ModelCardMismatch(
            f"input {input_name!r} has shape {_dim_text(input_shape)} ({len(input_shape)} dimensions), but the card's "
            f"input.layout {spec.layout} means {len(expected)} dimensions"
        )
    channel_axis = 3 if spec.layout == "NHWC" else 1
    axes = {channel_axis: "input.channels"}
    first_spatial = 1 if spec.layout == "NHWC" else 2
    for i in range(len(spec.size)):
        axes[first_spatial + i] = f"input.size[{i}]"
    for axis, field in axes.items():
        got = _fixed(input_shape[axis])
        if got is not None and got != expected[axis]:
            hint = ""
            if field == "input.channels" and spec.layout in ("NCHW", "NHWC"):
                other = 3 if spec.layout == "NCHW" else 1
                if _fixed(input_shape[other]) == spec.channels:
                    hint = f" (the model looks {'NHWC' if spec.layout == 'NCHW' else 'NCHW'}: check input.layout)"
            raise ModelCardMismatch(
                f"input {input_name!r} has shape {_dim_text(input_shape)} in {spec.layout}: dimension {axis} is {got}, "
                f"but the card says {field}: {expected[axis]}{hint}"
            )
    if not output_shapes:
        raise ModelCardMismatch("the model has no outputs")
    out = list(output_shapes[0])
    kind, classes = card.output.kind, card.output.classes or []
    if card.task == "classify":
        if len(out) != 2:
            raise ModelCardMismatch(f"output shape {_dim_text(out)}: a classifier must output [batch, classes]")
        got = _fixed(out[1])
        binary_single = got == 1 and len(classes) == 2 and kind == "logits"
        if got is not None and got != len(classes) and not binary_single:
            raise ModelCardMismatch(
                f"output shape {_dim_text(out)} gives {got} scores per image, but the card's output.classes "
                f"names {len(classes)} classes ({', '.join(classes)})"
            )
    elif card.task in ("segment2d", "segment3d"):
        spatial = len(spec.size)
        if len(out) not in (spatial + 1, spatial + 2):
            raise ModelCardMismatch(
                f"output shape {_dim_text(out)}: a {card.task} model must output [batch, (channels,) "
                f"{', '.join('DHW'[-spatial:])}] with {spatial + 2} (or {spatial + 1}) dimensions"
            )
        out_spatial = out[1:spatial + 1] if spec.layout == "NHWC" or len(out) == spatial + 1 else out[2:]
        for i, (got, want) in enumerate(zip(out_spatial, spec.size, strict=True)):
            if _fixed(got) is not None and got != want:
                raise ModelCardMismatch(
                    f"output shape {_dim_text(out)}: the mask's size {_dim_text(out_spatial)} differs from the "
                    f"card's input.size {spec.size} (dimension {'DHW'[-spatial:][i]}); MedView maps masks back from "
                    "the model's input grid, so they must have the same size"
                )
        if len(out) == spatial + 2 and classes:
            axis = len(out) - 1 if spec.layout == "NHWC" else 1
            got = _fixed(out[axis])
            ok = got is None or got == len(classes) or (got == 1 and len(classes) <= 2)
            if not ok:
                raise ModelCardMismatch(
                    f"output shape {_dim_text(out)} has {got} mask channels, but output.classes names {len(classes)}"
                )
    elif card.task == "embed" and len(out) != 2:
        raise ModelCardMismatch(f"output shape {_dim_text(out)}: an embedder must output [batch, dimensions]")
    elif card.task == "detect2d" and (len(out) not in (2, 3) or _fixed(out[-1]) not in (None, 6)):
        raise ModelCardMismatch(
            f"output shape {_dim_text(out)}: a detector must output boxes as [N, 6] or [batch, N, 6] "
            "(x1, y1, x2, y2, score, label)"
        )


def _check_batch(card: ModelCard, batch: np.ndarray) -> None:
    expected = card_input_shape(card)
    if batch.ndim != len(expected):
        raise InvalidInput(f"batch has {batch.ndim} dimensions {list(batch.shape)}; {card.input.layout} needs "
                           f"{len(expected)}")


def without_paths(exc: BaseException, path: Path) -> str:
    """A library's error text with the server's folders taken out (clients see the file's name only)."""
    text = str(exc)
    for long in (str(path), str(path.parent)):
        text = text.replace(long, path.name if long == str(path) else "…")
    return text


class OnnxModel:
    """An ONNX model in an onnxruntime session on the chosen device."""

    def __init__(self, path: str | Path, card: ModelCard, device_setting: str = "auto", *, check: bool = True,
                 threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        self.card = card
        if not self.path.is_file():
            raise ModelLoadError(f"model file {self.path} does not exist")
        providers = choose_onnx_providers(device_setting, ort.get_available_providers())
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: provider fallbacks are reported through .device
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for bad files and bad graphs
            reason = without_paths(exc, self.path)
            raise ModelLoadError(f"{self.path.name} is not a loadable ONNX model: {reason}") from None
        used = self.session.get_providers()
        if CUDA_PROVIDER in used:
            cuda_options = self.session.get_provider_options().get(CUDA_PROVIDER, {})
            self.device = f"cuda:{cuda_options.get('device_id', 0)}"
        else:
            self.device = "cpu"
        if parse_device(device_setting)[0] == "cuda" and self.device == "cpu":
            raise DeviceUnavailable(
                f"MEDVIEW_DEVICE={device_setting} asks for CUDA, but onnxruntime could not start its CUDA provider "
                "(driver or CUDA libraries missing?); set MEDVIEW_DEVICE=auto or cpu to run on the CPU"
            )
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise ModelCardMismatch(f"the model has {len(inputs)} inputs ({names}); MedView feeds exactly one image "
                                    "batch")
        self.input_name = inputs[0].name
        self.input_shape = list(inputs[0].shape)
        self.input_type = inputs[0].type
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.output_shapes = [list(o.shape) for o in self.session.get_outputs()]
        log.info("loaded %s on %s (providers %s)", self.path.name, self.device, used)
        if check:
            self.check_against_card()

    def check_against_card(self) -> None:
        if self.input_type not in _ONNX_FLOAT_TYPES:
            raise ModelCardMismatch(f"input {self.input_name!r} takes {self.input_type}; MedView feeds float tensors")
        check_shapes(self.card, self.input_shape, self.output_shapes, self.input_name)

    def run(self, batch: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        _check_batch(self.card, batch)
        dtype = _ONNX_FLOAT_TYPES.get(self.input_type, np.float32)
        outputs = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=dtype)})
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _import_torch() -> Any | None:
    try:
        import torch
    except ImportError:
        return None
    return torch


class TorchScriptModel:
    """A TorchScript model (needs the optional `torch` extra); CUDA through torch.cuda when present."""

    def __init__(self, path: str | Path, card: ModelCard, device_setting: str = "auto", *, check: bool = True):
        torch = _import_torch()
        if torch is None:
            raise ModelLoadError("TorchScript models need PyTorch, which is not installed (pip install medview[torch])")
        self._torch = torch
        self.path = Path(path)
        self.card = card
        if not self.path.is_file():
            raise ModelLoadError(f"model file {self.path} does not exist")
        kind, index = parse_device(device_setting)
        has_cuda = bool(torch.cuda.is_available())
        if kind == "cuda" and not has_cuda:
            raise DeviceUnavailable(f"MEDVIEW_DEVICE={device_setting} asks for CUDA, but torch.cuda is not available; "
                                    "set MEDVIEW_DEVICE=auto or cpu")
        if kind == "cuda" and index is not None and index >= torch.cuda.device_count():
            raise DeviceUnavailable(f"MEDVIEW_DEVICE={device_setting}: this machine has "
                                    f"{torch.cuda.device_count()} CUDA device(s)")
        use_cuda = kind == "cuda" or (kind == "auto" and has_cuda)
        self.device = f"cuda:{index or 0}" if use_cuda else "cpu"
        try:
            with warnings.catch_warnings():  # torch ≥ 2.10 deprecates TorchScript, which is still what users bring
                warnings.simplefilter("ignore", DeprecationWarning)
                self.module = torch.jit.load(str(self.path), map_location=self.device).eval()
        except Exception as exc:  # torch raises RuntimeError subclasses for anything unloadable
            raise ModelLoadError(f"{self.path.name} is not a loadable TorchScript model: "
                                 f"{without_paths(exc, self.path)}") from None
        if check:
            self.check_against_card()

    def check_against_card(self) -> None:
        # TorchScript keeps no static shapes: run one zero image of the card's shape and look at the result.
        shape = [1 if d is None else d for d in card_input_shape(self.card, batch=1)]
        try:
            out = self.run(np.zeros(shape, dtype=np.float32))
        except ModelCardMismatch:
            raise
        except Exception as exc:
            raise ModelCardMismatch(f"the model fails on an input of the card's shape {shape}: {exc}") from None
        outs = out if isinstance(out, tuple) else (out,)
        check_shapes(self.card, shape, [list(o.shape) for o in outs])

    def run(self, batch: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        _check_batch(self.card, batch)
        torch = self._torch
        with torch.inference_mode():
            result = self.module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device))
        if isinstance(result, list | tuple):
            return tuple(r.detach().cpu().numpy() for r in result)
        return result.detach().cpu().numpy()


RuntimeFactory = Callable[..., InferenceRuntime]
RUNTIMES: dict[str, RuntimeFactory] = {".onnx": OnnxModel, ".pt": TorchScriptModel, ".ts": TorchScriptModel,
                                       ".torchscript": TorchScriptModel}


def open_model(path: str | Path, card: ModelCard, device_setting: str = "auto") -> InferenceRuntime:
    """Load a model with the runtime its suffix names, checked against the card."""
    suffix = Path(path).suffix.lower()
    factory = RUNTIMES.get(suffix)
    if factory is None:
        raise ModelLoadError(f"unknown model file type {suffix or '(none)'!r}; expected one of {', '.join(RUNTIMES)}")
    return factory(path, card, device_setting)
