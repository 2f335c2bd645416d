"""The signing key: from the setting, else generated once into data_dir/secret_key (0600) and reused."""

from __future__ import annotations

import logging
import stat
import threading

import pytest

from app.accounts.secret import SECRET_FILE, is_weak, load_or_create_secret
from app.errors import InvalidInput

STRONG = "k3Jx9-Qv0Lr2ZpW8yT6mN4bC1dF7hG5s"


def test_created_0600_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDVIEW_SECRET_KEY", raising=False)
    data = tmp_path / "data"
    first = load_or_create_secret(data)
    path = data / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32 and not is_weak(first)
    assert load_or_create_secret(data) == first
    assert [p.name for p in data.iterdir()] == [SECRET_FILE]  # no temporary file left behind


def test_setting_wins_over_the_file(tmp_path, monkeypatch):
    assert load_or_create_secret(tmp_path, STRONG) == STRONG
    assert not (tmp_path / SECRET_FILE).exists()
    monkeypatch.setenv("MEDVIEW_SECRET_KEY", STRONG + "x")
    assert load_or_create_secret(tmp_path) == STRONG + "x"


def test_weak_setting_is_used_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert load_or_create_secret(tmp_path, "changeme") == "changeme"
    assert "MEDVIEW_SECRET_KEY is weak" in caplog.text and "changeme" not in caplog.text


def test_concurrent_first_starts_agree(tmp_path):
    keys: list[str] = []
    threads = [threading.Thread(target=lambda: keys.append(load_or_create_secret(tmp_path, ""))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1
    assert (tmp_path / SECRET_FILE).read_text().strip() == keys[0]


def test_a_weak_file_is_refused(tmp_path):
    (tmp_path / SECRET_FILE).write_text("secret\n")
    with pytest.raises(InvalidInput, match="weak or damaged; delete the file"):
        load_or_create_secret(tmp_path, "")


@pytest.mark.parametrize("value", ["", "   ", "changeme", "secret", "medview", "short-but-random-9f3k",
                                   "a" * 64, "abababababababababababababababababab"])
def test_weak(value):
    assert is_weak(value)


def test_strong():
    assert not is_weak(STRONG)
