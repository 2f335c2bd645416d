"""Real ONNX models built in the tests (onnx helper API; nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def const(name: str, values: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values), name)


def save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="medview-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def centre_mean_classifier(path: Path, w: np.ndarray, b: np.ndarray, classes: int = 2,
                           name: str = "classifier") -> Path:
    """[N, 3, 96, 96] → logits [N, classes] = mean of the centre 32×32 (all channels) · w + b, where the
    1×2 `w` and 2-vector `b` are tiled out to `classes` columns."""
    w = np.tile(w, (1, classes // 2 + 1))[:, :classes].astype(np.float32)
    b = np.tile(b, classes // 2 + 1)[:classes].astype(np.float32)
    nodes = [
        helper.make_node("Slice", ["image", "starts", "ends", "axes"], ["centre"]),
        helper.make_node("ReduceMean", ["centre"], ["m4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["m4", "col"], ["m"]),
        helper.make_node("MatMul", ["m", "w"], ["wm"]),
        helper.make_node("Add", ["wm", "b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 96, 96])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        initializer=[const("starts", np.array([32, 32], np.int64)), const("ends", np.array([64, 64], np.int64)),
                     const("axes", np.array([2, 3], np.int64)), const("col", np.array([-1, 1], np.int64)),
                     const("w", w), const("b", b)],
    )
    return save(graph, path)


def _model_input(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def threshold_segmenter(path: Path, size: tuple[int, int], threshold: float, gain: float = 50.0,
                        channels: int = 3, stride: int = 1) -> Path:
    """[N, C, H, W] → mask_logits [N, 1, H, W] = gain · (mean over channels − threshold): foreground exactly
    where the channel mean exceeds `threshold`. `stride` > 1 average-pools first, so the mask comes out
    smaller than the input (a model whose card cannot be right)."""
    h, w = size
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1], keepdims=1)]
    if stride > 1:
        nodes[0].output[0] = "m_full"
        nodes.append(helper.make_node("AveragePool", ["m_full"], ["m"], kernel_shape=[stride, stride],
                                      strides=[stride, stride]))
    nodes += [helper.make_node("Sub", ["m", "t"], ["d"]),
              helper.make_node("Mul", ["d", "g"], ["logits"])]
    graph = helper.make_graph(
        nodes, "threshold-segmenter", [_model_input("image", ["N", channels, h, w])],
        [_model_input("logits", ["N", 1, h // stride, w // stride])],
        initializer=[const("t", np.array(threshold, np.float32)), const("g", np.array(gain, np.float32))])
    return save(graph, path)


def constant_detector(path: Path, boxes: np.ndarray, size: tuple[int, int], channels: int = 3) -> Path:
    """[N, C, H, W] → boxes [N, K, 6]: the same constant (K, 6) boxes (x1, y1, x2, y2, score, label) for every
    image, in model pixels (the input only sets the batch size)."""
    boxes = np.asarray(boxes, np.float32)
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Reshape", ["z", "shape"], ["z3"]),
             helper.make_node("Add", ["z3", "boxes"], ["out"])]
    graph = helper.make_graph(
        nodes, "constant-detector", [_model_input("image", ["N", channels, *size])],
        [_model_input("out", ["N", boxes.shape[0], 6])],
        initializer=[const("zero", np.array(0.0, np.float32)), const("shape", np.array([-1, 1, 1], np.int64)),
                     const("boxes", boxes[None])])
    return save(graph, path)


def threshold_segmenter_3d(path: Path, size: tuple[int, int, int], threshold: float, gain: float = 100.0,
                           label: int | None = None) -> Path:
    """[N, 1, D, H, W] → where the value exceeds `threshold`: two-class logits [N, 2, D, H, W]
    (0 and gain · (x − threshold)), or with `label`, a label mask [N, 1, D, H, W] of `label` (output.kind mask)."""
    if label is None:
        nodes = [helper.make_node("Sub", ["image", "t"], ["d"]),
                 helper.make_node("Mul", ["d", "g"], ["fg"]),
                 helper.make_node("Mul", ["image", "zero"], ["bg"]),
                 helper.make_node("Concat", ["bg", "fg"], ["out"], axis=1)]
        out_channels = 2
    else:
        nodes = [helper.make_node("Greater", ["image", "t"], ["above"]),
                 helper.make_node("Cast", ["above"], ["above_f"], to=TensorProto.FLOAT),
                 helper.make_node("Mul", ["above_f", "label"], ["out"])]
        out_channels = 1
    graph = helper.make_graph(
        nodes, "threshold-segmenter-3d", [_model_input("image", ["N", 1, *size])],
        [_model_input("out", ["N", out_channels, *size])],
        initializer=[const("t", np.array(threshold, np.float32)), const("g", np.array(gain, np.float32)),
                     const("zero", np.array(0.0, np.float32)), const("label", np.array(float(label or 0), np.float32))])
    return save(graph, path)


def projection_embedder(path: Path, size: tuple[int, int], channels: int = 3, dim: int = 16, pool: int = 12,
                        seed: int = 0) -> Path:
    """[N, C, H, W] → embedding [N, dim] = (pool×pool average-pooled pixels, flattened) · a fixed random matrix."""
    h, w = size
    cells = channels * (h // pool) * (w // pool)
    matrix = np.random.default_rng(seed).standard_normal((cells, dim)).astype(np.float32)
    nodes = [helper.make_node("AveragePool", ["image"], ["p"], kernel_shape=[pool, pool], strides=[pool, pool]),
             helper.make_node("Reshape", ["p", "flat"], ["f"]),
             helper.make_node("MatMul", ["f", "w"], ["embedding"])]
    graph = helper.make_graph(
        nodes, "projection-embedder", [_model_input("image", ["N", channels, h, w])],
        [_model_input("embedding", ["N", dim])],
        initializer=[const("flat", np.array([-1, cells], np.int64)), const("w", matrix)])
    return save(graph, path)
