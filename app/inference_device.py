"""Which compute device inference would use: CUDA when present and allowed, else the CPU."""

from __future__ import annotations

import functools


@functools.cache
def _cuda_available() -> bool:
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def describe_device(setting: str) -> str:
    if setting == "cpu":
        return "cpu"
    if setting.startswith("cuda"):
        return setting if ":" in setting else "cuda:0"
    return "cuda:0" if _cuda_available() else "cpu"
