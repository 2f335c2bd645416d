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
