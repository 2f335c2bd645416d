"""The README's configuration table names every setting (datasette's "docs mention every setting")."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_setting():
    text = README.read_text()
    for name in Settings.model_fields:
        assert f"`MEDVIEW_{name.upper()}`" in text, f"README configuration table lacks MEDVIEW_{name.upper()}"


def test_unsafe_device_refused():
    with pytest.raises(ValueError, match="MEDVIEW_DEVICE"):
        Settings(_env_file=None, device="tpu")
    assert Settings(_env_file=None, device="cuda:1").device == "cuda:1"


def test_data_roots_default_to_data_dir(tmp_path):
    s = Settings(_env_file=None, data_dir=tmp_path / "d")
    assert s.allowed_roots == [(tmp_path / "d").resolve()]
    s = Settings(_env_file=None, data_roots=f"{tmp_path}/a:{tmp_path}/b")
    assert s.allowed_roots == [(tmp_path / "a").resolve(), (tmp_path / "b").resolve()]
