"""`medview demo`'s models: small ONNX graphs built here with the onnx helper API (nothing downloaded),
registered and run over the demo datasets so the item pages show predictions beside the ground truth and the
evaluation pages have numbers.

They are hand-set heuristics, not trained networks, and their names and cards say so:
- `demo-pcam-darkness` (classify, PCam): tumor when the patch is darker than a threshold (crowded, large nuclei
  are dark), a logistic on its mean intensity — the label is defined by the centre 32×32 region only, so the
  whole-patch mean gets some patches wrong, as a weak baseline should;
- `demo-bis5k-pale-lumen` (segment2d, BIS5k): foreground where a 9×9 mean of the image is pale (gland lumens
  are the only near-white tissue), a thresholded box filter — it finds lumens, not whole glands, so its Dice is
  modest on purpose: the difference view then has something to show;
- `demo-pcam-pooled-projection` (embed, PCam): a fixed random projection (seed 0) of the 12×12-pooled pixels to
  32 numbers — not a learnt embedding: "similar" means similar colour layout, which is enough for the similar
  items panel and search to work out of the box;
- `demo-deeplesion-lesion-projection` (embed, DeepLesion): the same kind of fixed projection (seed 1) of the
  4×4-pooled soft-tissue-windowed lesion crop (one vector per RECIST lesion and per key slice), so the patient
  page's lesion tracks are linked by embedding + location on the demo too — "similar" is the crop's coarse
  brightness layout, not a learnt lesion descriptor.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import Dataset, Model

log = logging.getLogger(__name__)

PCAM_CARD = """name: demo-pcam-darkness
description: hand-set heuristic for the demo (not trained) — tumor when the patch is dark
task: classify
input: {layout: NCHW, size: [96, 96], channels: 3, scale: 0.00392156862745, mean: [0, 0, 0], std: [1, 1, 1]}
output: {kind: logits, classes: [normal, tumor]}
applies_to: [pcam]
"""

BIS5K_CARD = """name: demo-bis5k-pale-lumen
description: hand-set heuristic for the demo (not trained) — pale 9x9 neighbourhoods (gland lumens)
task: segment2d
input: {layout: NCHW, size: [256, 256], channels: 3, scale: 0.00392156862745, mean: [0, 0, 0], std: [1, 1, 1]}
output: {kind: mask_logits, classes: [background, gland]}
applies_to: [bis5k]
"""


def _onnx_bytes(nodes, name: str, inputs, outputs, initializer) -> bytes:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializer)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="medview-demo")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def pcam_classifier(threshold: float = 0.76, gain: float = 60.0) -> bytes:
    """[N, 3, 96, 96] in [0, 1] → logits [N, 2] = (0, gain · (threshold − patch mean))."""
    from onnx import TensorProto, helper, numpy_helper

    def const(n: str, v) -> object:
        return numpy_helper.from_array(np.asarray(v), n)

    nodes = [helper.make_node("ReduceMean", ["image"], ["m4"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Reshape", ["m4", "col"], ["m"]),
             helper.make_node("MatMul", ["m", "w"], ["wm"]),
             helper.make_node("Add", ["wm", "b"], ["logits"])]
    return _onnx_bytes(
        nodes, "demo-pcam-darkness",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 96, 96])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [const("col", np.array([-1, 1], np.int64)),
         const("w", np.array([[0.0, -gain]], np.float32)), const("b", np.array([0.0, gain * threshold], np.float32))])


EMBED_CARD = """name: demo-pcam-pooled-projection
description: >-
  hand-set for the demo (not trained) — a fixed random projection of 12x12-pooled pixels;
  similar means a similar colour layout, not learnt features
task: embed
input: {layout: NCHW, size: [96, 96], channels: 3, scale: 0.00392156862745, mean: [0.5, 0.5, 0.5], std: [1, 1, 1]}
output: {kind: embedding}
applies_to: [pcam]
"""


LESION_EMBED_CARD = """name: demo-deeplesion-lesion-projection
description: >-
  hand-set for the demo (not trained) — a fixed random projection of the 4x4-pooled lesion crop
  (soft-tissue window); similar means a similar coarse brightness layout, not learnt features
task: embed
input: {layout: NCHW, size: [32, 32], channels: 1, window: [-160, 240], mean: [0.5], std: [1]}
output: {kind: embedding}
applies_to: [deeplesion]
"""


def pcam_embedder(dim: int = 32, pool: int = 12, seed: int = 0, channels: int = 3, size: int = 96,
                  name: str = "demo-pcam-pooled-projection") -> bytes:
    """[N, channels, size, size] (centred by the card's mean) → [N, dim] = pool×pool-averaged pixels · a fixed
    Gaussian random matrix (Johnson–Lindenstrauss: cosines between items roughly keep those of their pooled
    pixels)."""
    from onnx import TensorProto, helper, numpy_helper

    cells = channels * (size // pool) ** 2
    matrix = (np.random.default_rng(seed).standard_normal((cells, dim)) / np.sqrt(dim)).astype(np.float32)
    nodes = [helper.make_node("AveragePool", ["image"], ["p"], kernel_shape=[pool, pool], strides=[pool, pool]),
             helper.make_node("Reshape", ["p", "flat"], ["f"]),
             helper.make_node("MatMul", ["f", "w"], ["embedding"])]
    return _onnx_bytes(
        nodes, name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", channels, size, size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        [numpy_helper.from_array(np.array([-1, cells], np.int64), "flat"), numpy_helper.from_array(matrix, "w")])


def bis5k_segmenter(threshold: float = 0.82, gain: float = 40.0, size: int = 256) -> bytes:
    """[N, 3, H, W] in [0, 1] → mask_logits [N, 1, H, W] = gain · (9×9 mean of the channel mean − threshold)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["image"], ["grey"], axes=[1], keepdims=1),
             helper.make_node("AveragePool", ["grey"], ["local"], kernel_shape=[9, 9], pads=[4, 4, 4, 4],
                              count_include_pad=0),
             helper.make_node("Sub", ["local", "t"], ["d"]),
             helper.make_node("Mul", ["d", "g"], ["logits"])]
    return _onnx_bytes(
        nodes, "demo-bis5k-pale-lumen",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1, size, size])],
        [numpy_helper.from_array(np.array(threshold, np.float32), "t"),
         numpy_helper.from_array(np.array(gain, np.float32), "g")])


DEMO_MODELS: list[tuple[str, str, str, Callable[[], bytes]]] = [
    # (dataset kind, file name, card, builder)
    ("pcam", "demo_pcam_darkness.onnx", PCAM_CARD, pcam_classifier),
    ("bis5k", "demo_bis5k_pale_lumen.onnx", BIS5K_CARD, bis5k_segmenter),
    ("pcam", "demo_pcam_pooled_projection.onnx", EMBED_CARD, pcam_embedder),
    ("deeplesion", "demo_deeplesion_lesion_projection.onnx", LESION_EMBED_CARD,
     lambda: pcam_embedder(dim=16, pool=8, seed=1, channels=1, size=32, name="demo-deeplesion-lesion-projection")),
]


def register_and_predict(session: Session, settings: Settings, dataset_ids: dict[str, int]) -> list[str]:
    """Register the demo models and predict their demo dataset (a job run in the foreground), once: a later
    `medview demo` finds them registered and leaves them (no empty job per run). One console line per model."""
    from app.inference.card import card_from_text
    from app.inference.jobs import create_predict_job, run_job
    from app.inference.registry import RuntimeCache, add_model

    engine = session.get_bind()
    if not isinstance(engine, Engine):  # the job opens its own sessions on the engine
        raise TypeError(f"register_and_predict needs a session bound to an Engine, not a {type(engine).__name__}")
    runtimes = RuntimeCache()
    lines = []
    for kind, filename, card_text, build in DEMO_MODELS:
        dataset_id = dataset_ids.get(kind)
        if dataset_id is None:
            continue
        name = card_from_text(card_text).name
        if session.scalar(select(Model.id).where(Model.name == name)) is not None:
            continue
        model = add_model(session, settings, io.BytesIO(build()), filename, card_text=card_text)
        job = create_predict_job(session, model.id, dataset_id, {})
        status = run_job(engine, settings, runtimes, job.id)
        dataset = session.get(Dataset, dataset_id)
        lines.append(f"model {name}: predicted {dataset.name if dataset else dataset_id} ({status})")
    runtimes.clear()
    return lines
