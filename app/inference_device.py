"""Which compute device inference would use: the same choice the ONNX runtime makes (app.inference.runtime)."""

from __future__ import annotations

import functools

from app.inference.runtime import CUDA_PROVIDER, DeviceUnavailable, choose_onnx_providers


@functools.cache
def _available_providers() -> tuple[str, ...]:
    try:
        import onnxruntime
    except ImportError:
        return ()
    return tuple(onnxruntime.get_available_providers())


def describe_device(setting: str) -> str:
    """"cpu" or "cuda:N" as a runtime would pick it for MEDVIEW_DEVICE; "unavailable: …" when it cannot."""
    try:
        providers = choose_onnx_providers(setting, _available_providers())
    except DeviceUnavailable:
        return f"unavailable: {setting} (no CUDA provider)"
    first = providers[0]
    if isinstance(first, tuple) and first[0] == CUDA_PROVIDER:
        return f"cuda:{first[1].get('device_id', 0)}"
    return "cpu"
