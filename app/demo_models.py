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
- `demo-deeplesion-blobs` (detect2d, DeepLesion): dark compact blobs against their surroundings in a narrow
  soft-tissue window (box filter differences at four sizes, local maxima, a logistic score) — it finds some
  lesions and marks vessels and bowel too, so the FROC page has a weak baseline to show;
- `demo-verse-bone-threshold` (segment3d, VerSe): bone where the CT is above 300 HU, one foreground channel —
  the vertebrae without their numbers, so the viewer's difference view compares it on foreground;
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


DETECT_CARD = """name: demo-deeplesion-blobs
description: >-
  hand-set heuristic for the demo (not trained) — dark compact blobs against their surroundings in a narrow
  soft-tissue window; a weak baseline that also marks vessels and bowel, so the FROC has something to show
task: detect2d
input: {size: [512, 512], channels: 3, window: [-20, 120], slices: 3}
output: {kind: boxes, classes: [lesion], score_threshold: 0.5}
applies_to: [deeplesion]
"""

SEGMENT3D_CARD = """name: demo-verse-bone-threshold
description: hand-set heuristic for the demo (not trained) — bone where the CT is above 300 HU (one foreground channel)
task: segment3d
input: {layout: NCDHW, size: [32, 64, 64], channels: 1, window: [-1000, 1900], overlap: 0.25}
output: {kind: mask_logits}
applies_to: [verse]
"""


def deeplesion_detector(size: int = 512, scales: tuple[int, ...] = (20, 32, 44, 56), per_scale: int = 3,
                        threshold: float = 0.08, gain: float = 40.0, dark_max: float = 0.2,
                        bright_max: float = 0.02) -> bytes:
    """[N, 3, S, S] (key slice ± 1, windowed −20…120 HU to [0, 1]) → boxes [N, K, 6] (x1, y1, x2, y2, score, 0).

    A hand-set blob finder: at each box size b, the mean of a b×b window against the mean of the 2b×2b window
    around it (a box filter difference of the slices' mean); where the inside is darker than its surroundings
    (DeepLesion's lesions are mostly hypodense), the surroundings are neither fat/air (< −20 HU) nor bone (> 120 HU)
    beyond a small fraction, and the inside is not fat, the 5×5 local maxima of that difference are candidates;
    the `per_scale` strongest per size become boxes, scored by a logistic of the difference."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []
    inits: list = []

    def c(name: str, v: object, dt: type = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(v, dt), name))
        return name

    nodes.append(helper.make_node("ReduceMean", ["image"], ["x"], axes=[1], keepdims=1))  # [N,1,S,S]
    nodes.append(helper.make_node("Less", ["x", c("air_t", 0.02)], ["air_b"]))
    nodes.append(helper.make_node("Cast", ["air_b"], ["air"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Greater", ["x", c("bone_t", 0.98)], ["bone_b"]))
    nodes.append(helper.make_node("Cast", ["bone_b"], ["bone"], to=TensorProto.FLOAT))
    outs = []
    for b in scales:
        s, p = b // 4, f"s{b}_"
        w = (size - b) // s + 1
        nodes += [helper.make_node("AveragePool", ["x"], [p+"in"], kernel_shape=[b, b], strides=[s, s]),
                  helper.make_node("AveragePool", ["x"], [p+"out"], kernel_shape=[2*b, 2*b], strides=[s, s],
                                   pads=[b//2]*4, count_include_pad=0),
                  helper.make_node("AveragePool", ["air"], [p+"airf"], kernel_shape=[2*b, 2*b], strides=[s, s],
                                   pads=[b//2]*4, count_include_pad=0),
                  helper.make_node("AveragePool", ["bone"], [p+"bonef"], kernel_shape=[2*b, 2*b], strides=[s, s],
                                   pads=[b//2]*4, count_include_pad=0),
                  helper.make_node("Sub", [p+"out", p+"in"], [p+"d1"]),
                  helper.make_node("LessOrEqual", [p+"airf", c(p+"airmax", dark_max)], [p+"ok1_b"]),
                  helper.make_node("LessOrEqual", [p+"bonef", c(p+"bonemax", bright_max)], [p+"ok2_b"]),
                  helper.make_node("Greater", [p+"in", c(p+"inmin", 0.1)], [p+"ok3_b"]),
                  helper.make_node("And", [p+"ok1_b", p+"ok2_b"], [p+"ok12"]),
                  helper.make_node("And", [p+"ok12", p+"ok3_b"], [p+"ok_b"]),
                  helper.make_node("Cast", [p+"ok_b"], [p+"ok"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", [p+"d1", p+"ok"], [p+"d"]),
                  helper.make_node("MaxPool", [p+"d"], [p+"mp"], kernel_shape=[5, 5], strides=[1, 1], pads=[2]*4),
                  helper.make_node("Equal", [p+"d", p+"mp"], [p+"peak_b"]),
                  helper.make_node("Cast", [p+"peak_b"], [p+"peak"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", [p+"d", p+"peak"], [p+"dp"]),
                  helper.make_node("Reshape", [p+"dp", c(p+"flat", [0, -1], np.int64)], [p+"f"]),
                  helper.make_node("TopK", [p+"f", c(p+"k", [per_scale], np.int64)], [p+"v", p+"i"], axis=1),
                  helper.make_node("Div", [p+"i", c(p+"w", w, np.int64)], [p+"row"]),
                  helper.make_node("Mod", [p+"i", c(p+"w2", w, np.int64)], [p+"col"]),
                  helper.make_node("Cast", [p+"row"], [p+"rowf"], to=TensorProto.FLOAT),
                  helper.make_node("Cast", [p+"col"], [p+"colf"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", [p+"colf", c(p+"sf", float(s))], [p+"x1"]),
                  helper.make_node("Mul", [p+"rowf", c(p+"sf2", float(s))], [p+"y1"]),
                  helper.make_node("Add", [p+"x1", c(p+"bf", float(b))], [p+"x2"]),
                  helper.make_node("Add", [p+"y1", c(p+"bf2", float(b))], [p+"y2"]),
                  helper.make_node("Sub", [p+"v", c(p+"t", threshold)], [p+"vt"]),
                  helper.make_node("Mul", [p+"vt", c(p+"g", gain)], [p+"vg"]),
                  helper.make_node("Sigmoid", [p+"vg"], [p+"score"]),
                  helper.make_node("Mul", [p+"v", c(p+"zero", 0.0)], [p+"label"])]
        parts = []
        for n in ("x1", "y1", "x2", "y2", "score", "label"):
            nodes.append(helper.make_node("Unsqueeze", [p+n, c(p+"ax"+n, [2], np.int64)], [p+n+"_u"]))
            parts.append(p+n+"_u")
        nodes.append(helper.make_node("Concat", parts, [p+"boxes"], axis=2))
        outs.append(p+"boxes")
    nodes.append(helper.make_node("Concat", outs, ["boxes"], axis=1))
    k = per_scale * len(scales)
    graph = helper.make_graph(nodes, "demo-deeplesion-blobs",
                               [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", k, 6])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="medview-demo")
    model.ir_version = 8
    import onnx

    onnx.checker.check_model(model)
    return model.SerializeToString()


def verse_bone_segmenter(threshold_hu: float = 300.0, gain: float = 50.0) -> bytes:
    """[N, 1, D, H, W] windowed −1000…1900 HU → one foreground logit per voxel, gain · (x − threshold): bone."""
    from onnx import TensorProto, helper, numpy_helper

    t = (threshold_hu + 1000.0) / 2900.0
    nodes = [helper.make_node("Sub", ["image", "t"], ["d"]), helper.make_node("Mul", ["d", "g"], ["logits"])]
    return _onnx_bytes(
        nodes, "demo-verse-bone-threshold",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "D", "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1, "D", "H", "W"])],
        [numpy_helper.from_array(np.array(t, np.float32), "t"),
         numpy_helper.from_array(np.array(gain, np.float32), "g")])


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
    ("deeplesion", "demo_deeplesion_blobs.onnx", DETECT_CARD, deeplesion_detector),
    ("verse", "demo_verse_bone_threshold.onnx", SEGMENT3D_CARD, verse_bone_segmenter),
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
