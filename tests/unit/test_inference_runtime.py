"""Runtimes on real (tiny) ONNX models built here with onnx.helper, checked against numpy."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from app.datasets.base import Image2D
from app.inference.card import ModelCard, card_from_dict
from app.inference.postprocess import boxes_as_outputs, classify, detections, segment
from app.inference.preprocess import ImageGeometry, boxes_to_image, labels_to_image, prepare_batch, prepare_image
from app.inference.runtime import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    DeviceUnavailable,
    ModelCardMismatch,
    ModelLoadError,
    OnnxModel,
    check_shapes,
    choose_onnx_providers,
    open_model,
    parse_device,
)
from tests.onnx_models import centre_mean_classifier, const, save

HAS_CUDA = CUDA_PROVIDER in ort.get_available_providers()
W_CLS = np.array([[2.0, -3.0]], dtype=np.float32)  # logits = mean(centre) · W + B
B_CLS = np.array([0.5, 1.0], dtype=np.float32)
THRESHOLD = 0.4


def classifier_onnx(path: Path, classes: int = 2) -> Path:
    """[N, 3, 96, 96] → logits [N, classes] = mean of the centre 32×32 (all channels) · W + B."""
    return centre_mean_classifier(path, W_CLS, B_CLS, classes)


def segmenter_onnx(path: Path) -> Path:
    """[N, 3, H, W] → sigmoid(channel mean − THRESHOLD) as [N, 1, H, W] (any H, W)."""
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["m", "t"], ["d"]),
        helper.make_node("Sigmoid", ["d"], ["prob"]),
    ]
    graph = helper.make_graph(
        nodes, "segmenter",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        initializer=[const("t", np.array(THRESHOLD, np.float32))],
    )
    return save(graph, path)


def classifier_card(classes: list[str] | None = None, **input_changes) -> ModelCard:
    spec = {"layout": "NCHW", "size": [96, 96], "channels": 3, "scale": 1 / 255,
            "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    spec.update(input_changes)
    return card_from_dict({"name": "centre-mean", "task": "classify", "input": spec,
                           "output": {"kind": "logits", "classes": classes or ["dark", "bright"]},
                           "applies_to": ["pcam"]})


SEG_CARD = card_from_dict({"name": "bright", "task": "segment2d",
                           "input": {"size": [64, 64], "channels": 3, "scale": 1 / 255},
                           "output": {"kind": "probabilities", "classes": ["background", "bright"]}})


@pytest.fixture
def classifier_path(tmp_path: Path) -> Path:
    return classifier_onnx(tmp_path / "classifier.onnx")


def test_classifier_matches_numpy(classifier_path):
    model = OnnxModel(classifier_path, classifier_card(), "auto")
    rng = np.random.default_rng(3)
    images = [Image2D(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)),
              Image2D(rng.integers(0, 256, (192, 144, 3), dtype=np.uint8)),  # resized (INTER_AREA) to 96×96
              Image2D(np.full((96, 96), 250, np.uint8))]  # grey, repeated to 3 channels
    batch, geometries = prepare_batch(images, model.card)
    assert batch.shape == (3, 3, 96, 96) and batch.dtype == np.float32
    assert geometries[1].original == (192, 144) and geometries[1].model == (96, 96)

    logits = model.run(batch)
    centre = batch[:, :, 32:64, 32:64].astype(np.float64).mean(axis=(1, 2, 3))
    expected = centre[:, None] * W_CLS.astype(np.float64) + B_CLS
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    # the first image computed independently of prepare_batch: (x/255 − 0.5)/0.25 over the centre
    own = ((images[0].pixels[32:64, 32:64].astype(np.float64) / 255 - 0.5) / 0.25).mean()
    np.testing.assert_allclose(logits[0], own * W_CLS[0] + B_CLS, rtol=1e-5, atol=1e-5)

    predictions = classify(logits, model.card)
    e = np.exp(expected - expected.max(axis=1, keepdims=True))
    np.testing.assert_allclose([p.probabilities for p in predictions], e / e.sum(axis=1, keepdims=True), rtol=1e-5)
    assert [p.label for p in predictions] == [["dark", "bright"][i] for i in expected.argmax(axis=1)]
    assert predictions[2].label == "dark"  # bright centre → mean 1.92 → logits [4.3, −4.8]
    outputs = predictions[0].as_outputs()
    assert set(outputs) == {"probabilities", "label"} and sum(outputs["probabilities"]) == pytest.approx(1)


def test_auto_on_this_machine_picks_what_is_available(classifier_path):
    model = OnnxModel(classifier_path, classifier_card(), "auto")
    if HAS_CUDA:
        assert model.device.startswith("cuda:")
    else:
        assert model.device == "cpu"
        assert model.session.get_providers() == [CPU_PROVIDER]
    assert OnnxModel(classifier_path, classifier_card(), "cpu").device == "cpu"


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("setting", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_a_clear_error(classifier_path, setting):
    with pytest.raises(DeviceUnavailable) as info:
        OnnxModel(classifier_path, classifier_card(), setting)
    message = str(info.value)
    assert f"MEDVIEW_DEVICE={setting}" in message and "no CUDA provider" in message and "cpu" in message
    assert info.value.status_code == 503


def test_provider_choice():
    cpu_only = [CPU_PROVIDER]
    both = [CUDA_PROVIDER, CPU_PROVIDER]
    assert choose_onnx_providers("auto", cpu_only) == [CPU_PROVIDER]
    assert choose_onnx_providers("auto", both) == [(CUDA_PROVIDER, {"device_id": 0}), CPU_PROVIDER]
    assert choose_onnx_providers("cuda", both) == [(CUDA_PROVIDER, {"device_id": 0}), CPU_PROVIDER]
    assert choose_onnx_providers("cuda:2", both) == [(CUDA_PROVIDER, {"device_id": 2}), CPU_PROVIDER]
    assert choose_onnx_providers("cpu", both) == [CPU_PROVIDER]
    assert parse_device("cuda:3") == ("cuda", 3) and parse_device("auto") == ("auto", None)
    for bad in ("gpu", "cpu:1", "cuda:x", ""):
        with pytest.raises(DeviceUnavailable, match="must be auto, cpu, cuda or cuda:N"):
            parse_device(bad)


def test_session_is_built_once_and_reused(classifier_path):
    model = OnnxModel(classifier_path, classifier_card(), "cpu")
    session = model.session
    batch = np.zeros((2, 3, 96, 96), np.float32)
    first = model.run(batch)
    np.testing.assert_allclose(model.run(batch), first)
    assert model.session is session
    np.testing.assert_allclose(first, np.tile(B_CLS, (2, 1)))


def test_output_count_contradicting_card(classifier_path):
    card = classifier_card(["a", "b", "c"])
    with pytest.raises(ModelCardMismatch) as info:
        OnnxModel(classifier_path, card, "cpu")
    message = str(info.value)
    assert "gives 2 scores per image" in message and "names 3 classes (a, b, c)" in message
    # check=False defers the check; calling it explicitly gives the same answer
    model = OnnxModel(classifier_path, card, "cpu", check=False)
    with pytest.raises(ModelCardMismatch, match="names 3 classes"):
        model.check_against_card()


def test_channels_size_and_layout_contradicting_card(classifier_path):
    with pytest.raises(ModelCardMismatch, match=r"dimension 1 is 3, but the card says input.channels: 1"):
        OnnxModel(classifier_path, classifier_card(channels=1, mean=None, std=None), "cpu")
    with pytest.raises(ModelCardMismatch, match=r"dimension 3 is 96, but the card says input.size\[1\]: 64"):
        OnnxModel(classifier_path, classifier_card(size=[96, 64]), "cpu")
    with pytest.raises(ModelCardMismatch, match="the model looks NCHW: check input.layout"):
        OnnxModel(classifier_path, classifier_card(layout="NHWC"), "cpu")


def test_segmenter_end_to_end_keeps_labels(tmp_path):
    model = open_model(segmenter_onnx(tmp_path / "seg.onnx"), SEG_CARD, "auto")
    assert isinstance(model, OnnxModel)
    pixels = np.zeros((96, 128, 3), np.uint8)
    pixels[:, 64:] = 200  # right half bright: mean 200/255 = 0.78 > 0.4
    pixels[:, 64:, 0] = 0  # channel mean (0 + 200 + 200)/3/255 = 0.52 > 0.4 still
    x, geometry = prepare_image(Image2D(pixels), model.card)
    probs = model.run(x[None])
    assert probs.shape == (1, 1, 64, 64)
    np.testing.assert_allclose(probs[0, 0], 1 / (1 + np.exp(-(x.mean(axis=0) - THRESHOLD))), rtol=1e-5)
    mask = segment(probs, model.card)[0]
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    full = labels_to_image(mask, geometry)
    assert full.shape == (96, 128)
    expected = np.zeros((96, 128), np.uint8)
    expected[:, 64:] = 1
    np.testing.assert_array_equal(full, expected)


def test_segmenter_output_rank_contradicting_card(tmp_path):
    path = segmenter_onnx(tmp_path / "seg.onnx")
    card = card_from_dict({**SEG_CARD.model_dump(), "task": "detect2d", "output": {"kind": "boxes"}})
    with pytest.raises(ModelCardMismatch, match=r"a detector must output boxes as \[N, 6\]"):
        OnnxModel(path, card, "cpu")
    three = card_from_dict({**SEG_CARD.model_dump(), "output": {"kind": "mask_logits", "classes": ["a", "b", "c"]}})
    with pytest.raises(ModelCardMismatch, match="has 1 mask channels, but output.classes names 3"):
        OnnxModel(path, three, "cpu")


def test_check_shapes_accepts_dynamic_dims():
    card = classifier_card()
    check_shapes(card, ["batch", None, "h", "w"], [["batch", "k"]])
    check_shapes(card, [1, 3, 96, 96], [[1, 2]])
    with pytest.raises(ModelCardMismatch, match="4 dimensions"):
        check_shapes(card, [1, 3, 96], [[1, 2]])
    with pytest.raises(ModelCardMismatch, match=r"must output \[batch, classes\]"):
        check_shapes(card, [1, 3, 96, 96], [[1, 2, 1]])


def test_detection_postprocess_and_mapping():
    card = card_from_dict({"name": "det", "task": "detect2d", "input": {"size": [100, 200], "channels": 1},
                           "output": {"kind": "boxes", "classes": ["lesion", "node"]}})
    raw = np.array([[10, 10, 50, 40, 0.3, 0], [0, 20, 100, 60, 0.9, 1], [5, 5, 190, 95, 0.6, 0]], np.float32)
    kept = detections(raw, score_threshold=0.5)
    assert len(kept) == 1 and kept[0][:, 4].tolist() == pytest.approx([0.9, 0.6])
    mapped = boxes_to_image(kept[0], ImageGeometry(original=(50, 400), model=(100, 200)))
    np.testing.assert_allclose(mapped[0], [0, 10, 200, 30, 0.9, 1])
    assert boxes_as_outputs(mapped, card)["boxes"][0][5] == "node"


def test_bad_model_files(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="garbage.onnx is not a loadable ONNX model"):
        OnnxModel(garbage, classifier_card(), "cpu")
    with pytest.raises(ModelLoadError, match="does not exist"):
        OnnxModel(tmp_path / "none.onnx", classifier_card(), "cpu")
    with pytest.raises(ModelLoadError, match="unknown model file type"):
        open_model(tmp_path / "model.bin", classifier_card())


def test_torchscript_runtime(tmp_path):
    torch = pytest.importorskip("torch")
    from app.inference.runtime import TorchScriptModel

    class Centre(torch.nn.Module):
        def forward(self, x):
            m = x[:, :, 32:64, 32:64].mean(dim=(1, 2, 3)).unsqueeze(1)
            return m * torch.tensor([[2.0, -3.0]]) + torch.tensor([0.5, 1.0])

    path = tmp_path / "centre.pt"
    with warnings.catch_warnings():  # torch ≥ 2.10 deprecates scripting; TorchScript files remain what users bring
        for category in (DeprecationWarning, FutureWarning):  # FutureWarning from torch 2.14
            warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated\. Please switch to `torch\.compile` "
                                    r"or `torch\.export`\.", category)
        torch.jit.script(Centre()).save(str(path))
    model = TorchScriptModel(path, classifier_card(), "cpu")
    assert model.device == "cpu"
    np.testing.assert_allclose(model.run(np.zeros((1, 3, 96, 96), np.float32)), [B_CLS], rtol=1e-6)
    with pytest.raises(ModelCardMismatch, match="names 3 classes"):
        TorchScriptModel(path, classifier_card(["a", "b", "c"]), "cpu")
