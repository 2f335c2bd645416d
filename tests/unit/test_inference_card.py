"""Model cards: API.md's example parses from YAML and JSON; every invalid card names the field at fault."""

from __future__ import annotations

import copy
import json

import pytest

from app.errors import InvalidInput
from app.inference.card import ModelCard, ModelCardError, card_from_dict, card_from_text, load_card

API_EXAMPLE = """\
name: pcam-baseline
task: classify              # classify | segment2d | segment3d | detect2d
input:
  layout: NCHW              # NCHW | NHWC (NCDHW for 3-D)
  size: [96, 96]            # H, W   (D, H, W for 3-D)
  channels: 3
  scale: 0.00392156862745   # raw values are multiplied by this first (after windowing for CT)
  mean: [0.0, 0.0, 0.0]
  std: [1.0, 1.0, 1.0]
output:
  kind: logits              # logits | probabilities | mask_logits | mask | boxes
  classes: [normal, tumor]
applies_to: [pcam]
"""

CT_DETECTOR = {
    "name": "lesion-3slice",
    "task": "detect2d",
    "input": {"layout": "NCHW", "size": [512, 512], "channels": 3, "window": [-1024, 3071], "slices": 3,
              "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    "output": {"kind": "boxes", "classes": ["lesion"]},
    "applies_to": ["deeplesion"],
}


def problems_of(data: dict) -> list[str]:
    with pytest.raises(ModelCardError) as info:
        card_from_dict(data)
    return info.value.problems


def test_api_example_loads_from_yaml_and_json(tmp_path):
    yaml_path = tmp_path / "card.yaml"
    yaml_path.write_text(API_EXAMPLE)
    card = load_card(yaml_path)
    assert card.name == "pcam-baseline" and card.task == "classify"
    assert card.input.size == [96, 96] and card.input.channels == 3 and card.input.layout == "NCHW"
    assert card.input.scale == pytest.approx(1 / 255)
    assert card.output.classes == ["normal", "tumor"] and card.applies_to == ["pcam"]
    assert not card.is_ct and card.input.slices == 1

    json_path = tmp_path / "card.json"
    json_path.write_text(json.dumps(card.model_dump()))
    assert load_card(json_path) == card
    # a card uploaded without a file name is sniffed
    assert card_from_text(json.dumps(card.model_dump()).encode()) == card


def test_ct_card_and_defaults():
    card = card_from_dict(CT_DETECTOR)
    assert card.is_ct and card.input.window == [-1024.0, 3071.0] and card.input.slices == 3
    minimal = card_from_dict({"name": "m", "task": "segment2d", "input": {"size": [64, 64], "channels": 1},
                              "output": {"kind": "mask_logits"}})
    assert minimal.input.mean_values == [0.0] and minimal.input.std_values == [1.0]
    assert minimal.input.scale == 1.0 and minimal.input.layout == "NCHW"


def test_numeric_class_names_become_text():
    data = card_from_text(API_EXAMPLE).model_dump()
    data["output"]["classes"] = [0, 1]
    assert card_from_dict(data).output.classes == ["0", "1"]


def test_size_error_names_field_and_task():
    data = card_from_text(API_EXAMPLE).model_dump()
    data["input"]["size"] = [96, 96, 3]
    assert problems_of(data) == ["input.size: expected 2 numbers for classify, got 3"]


def test_every_cross_field_problem_reported_at_once():
    data = card_from_text(API_EXAMPLE).model_dump()
    data["input"]["mean"] = [0.5]
    data["input"]["std"] = [0.2, 0.2]
    data["input"]["window"] = [-175, 275]
    data["input"]["layout"] = "NCDHW"
    data["output"]["classes"] = None
    problems = problems_of(data)
    assert "input.mean: expected 3 numbers (one per input.channels), got 1" in problems
    assert "input.std: expected 3 numbers (one per input.channels), got 2" in problems
    assert any(p.startswith("input.window: a CT window cannot apply to pcam") for p in problems)
    assert "input.layout: NCDHW is only for segment3d, not classify" in problems
    assert any(p.startswith("output.classes: classify needs the class names") for p in problems)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["input"].update(slices=3), "input.slices: neighbour slices are CT only and need input.window"),
        (lambda d: d.update(task="segment3d"), "input.layout: segment3d needs NCDHW, got NCHW"),
        (lambda d: d["output"].update(kind="boxes"), "output.kind: 'boxes' does not fit task classify"),
        (lambda d: d["output"].update(classes=["a", "a"]), "output.classes: names must be unique"),
        (lambda d: d["output"].update(classes=["only"]), "output.classes: classify needs the class names"),
        (lambda d: d["input"].update(window=[275, -175]), "input.window: high must be greater than low"),
        (lambda d: d["input"].update(window=[1, 2, 3]), "input.window: expected [low, high] in HU, got 3"),
        (lambda d: d["input"].update(std=[1, 0, 1]), "input.std: every std must be a positive finite number"),
        (lambda d: d["input"].update(scale=-1), "input.scale: must be a positive finite number"),
        (lambda d: d["input"].update(size=[96, 0]), "input.size: every size must be a positive number"),
        (lambda d: d["input"].update(layout="CHW"), "input.layout: Input should be 'NCHW', 'NHWC' or 'NCDHW'"),
        (lambda d: d.update(task="regress"), "task: Input should be 'classify'"),
        (lambda d: d["input"].pop("channels"), "input.channels: Field required"),
        (lambda d: d["input"].update(mean=[0, "x", 0]), "input.mean[1]: Input should be a valid number"),
        (lambda d: d["input"].update(windw=[0, 1]), "input.windw: unknown field"),
        (lambda d: d.update(name=""), "name: String should have at least 1 character"),
    ],
)
def test_single_problem_names_its_field(change, expected):
    data = copy.deepcopy(card_from_text(API_EXAMPLE).model_dump())
    change(data)
    problems = problems_of(data)
    assert any(p.startswith(expected) for p in problems), problems


def test_ct_slices_must_match_channels_and_be_odd():
    data = copy.deepcopy(CT_DETECTOR)
    data["input"]["channels"] = 1
    data["input"]["mean"] = data["input"]["std"] = None
    assert problems_of(data) == ["input.channels: expected 3 (one per slice of input.slices), got 1"]
    data["input"]["slices"] = 2
    assert problems_of(data)[0].startswith("input.slices: must be odd")


def test_file_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n  task: [\n")
    with pytest.raises(ModelCardError) as info:
        load_card(bad)
    assert str(bad) in str(info.value) and "line 2" in str(info.value) and "invalid YAML" in str(info.value)
    assert isinstance(info.value, InvalidInput)  # rendered as a 400 by the app's error handler

    broken = tmp_path / "bad.json"
    broken.write_text('{"name": "x",\n "task": }')
    with pytest.raises(ModelCardError, match=r"line 2 column \d+: invalid JSON"):
        load_card(broken)

    with pytest.raises(ModelCardError, match="cannot read the file"):
        load_card(tmp_path / "missing.yaml")

    with pytest.raises(ModelCardError, match="expected a mapping"):
        card_from_text("- just\n- a list\n")


def test_card_is_immutable():
    card = card_from_text(API_EXAMPLE)
    with pytest.raises(Exception, match="frozen"):
        card.name = "other"
    assert isinstance(card, ModelCard)


@pytest.mark.parametrize(("size", "channels", "expected"), [
    ([100000, 100000], 3, "at most 2048 model pixels per side"),
    ([2000, 2000], 3, "values per item; at most 4,194,304"),
    ([200, 200, 200], 1, "values per item"),
])
def test_absurd_input_sizes_are_refused_before_anything_is_allocated(size, channels, expected):
    task, layout = ("segment3d", "NCDHW") if len(size) == 3 else ("classify", "NCHW")
    output = {"kind": "mask_logits", "classes": ["bg", "fg"]} if task == "segment3d" else \
        {"kind": "logits", "classes": ["a", "b"]}
    problems = problems_of({"name": "big", "task": task, "input": {"layout": layout, "size": size,
                                                                     "channels": channels}, "output": output})
    assert any(p.startswith("input.size:") and expected in p for p in problems), problems
    assert card_from_dict({"name": "ok", "task": task, "input": {"layout": layout, "size": [96] * len(size),
                                                                 "channels": channels}, "output": output})
