"""`medview users …`: once as a user runs it (a separate process, the password piped in, the token on the last
line), then the other actions in-process through `app.cli.main`, which is the same code without the start-up."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import audit
from app.accounts import cli as users_cli
from app.accounts import login, users
from app.cli import main
from app.db.session import make_session_factory
from tests.accounts_helpers import fast_hashing_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def test_add_then_token_in_a_real_process(settings, engine):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDVIEW_")}
    env.update(MEDVIEW_DATABASE_URL=settings.database_url, MEDVIEW_DATA_DIR=str(settings.data_dir))

    def medview(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app.cli", "users", *args], input=stdin, capture_output=True,
                              text=True, cwd=ROOT, env=env, timeout=120)

    added = medview("add", "Ann", "--role", "reviewer", stdin="piped password 1\n")
    assert added.returncode == 0, added.stderr
    assert "added Ann (reviewer)" in added.stderr and "piped password 1" not in added.stdout + added.stderr
    made = medview("token", "ann", "--name", "nightly")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("mv_") and len(token) == 46
    with make_session_factory(engine)() as db:
        ann = login.request_user(db, "x" * 32, authorization=f"Bearer {token}", max_age=60)
        assert ann is not None and (ann.username, ann.role) == ("Ann", "reviewer")
        assert users.authenticate(db, "ann", "piped password 1") is ann


@pytest.fixture
def medview(settings, monkeypatch, capsys, fast_hashing):
    """Run `medview users …` in this process: (exit code, stdout, stderr)."""
    for key in list(os.environ):
        if key.startswith("MEDVIEW_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("MEDVIEW_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MEDVIEW_DATA_DIR", str(settings.data_dir))
    monkeypatch.chdir(settings.data_dir.parent)

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(["users", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_actions_and_their_messages(medview, engine):
    assert medview("add", "root", "--role", "admin", stdin="piped password 1\n")[0] == 0
    assert medview("add", "ann", stdin="piped password 2\r\n")[0] == 0  # default role viewer; CRLF stripped
    code, out, _ = medview("token", "ann")
    token = out.strip().splitlines()[-1]
    assert medview("set-role", "ann", "ANNOTATOR")[0] == 0
    assert medview("revoke-token", "1")[0] == 0
    assert medview("disable", "ann")[0] == 0
    code, out, _ = medview("list")
    assert [line.split()[:4] for line in out.splitlines()] == [["2", "ann", "annotator", "disabled"],
                                                              ["1", "root", "admin", "enabled"]]
    code, out, _ = medview("tokens", "ann")
    assert out.split()[:4] == ["1", "ann", "token", token[:8] + "…"] and "revoked" in out
    assert medview("enable", "ann")[0] == 0
    assert medview("password", "ann", stdin="piped password 3\n")[0] == 0
    with make_session_factory(engine)() as db:
        assert login.request_user(db, "x" * 32, authorization=f"Bearer {token}", max_age=60) is None
        assert users.authenticate(db, "ann", "piped password 3") is not None
        events = audit.query(db, actor=users_cli.cli_actor())["events"]
        assert [e["action"] for e in reversed(events)] == [
            "user.add", "user.add", "token.create", "user.role", "token.revoke", "user.disable", "user.enable",
            "user.password"]


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (("add", "bob"), "short\n", "password must be at least 8 characters"),
    (("add", "bob"), "\n", "password must not be empty"),
    (("add", "bad name"), "piped password 1\n", "username must be 1-64 characters"),
    (("set-role", "ghost", "admin"), "", "no user named 'ghost'"),
    (("token", "ghost"), "", "no user named 'ghost'"),
    (("revoke-token", "42"), "", "no API token with id 42"),
])
def test_errors_exit_2_with_a_message(medview, args, stdin, message):
    code, out, err = medview(*args, stdin=stdin)
    assert (code, out) == (2, "") and f"medview users: {message}" in err


def test_duplicate_name_any_case(medview):
    assert medview("add", "Ann", stdin="piped password 1\n")[0] == 0
    code, _, err = medview("add", "ANN", stdin="piped password 1\n")
    assert code == 2 and "username 'ANN' is already taken" in err


def test_terminal_prompts_twice(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["typed password", "typed password", "typed password", "typo password"])
    monkeypatch.setattr(users_cli.getpass, "getpass", lambda prompt: next(answers))
    assert users_cli.read_password(Tty()) == "typed password"
    with pytest.raises(Exception, match="the two passwords differ"):
        users_cli.read_password(Tty())


def test_unknown_role_is_refused_by_the_parser(medview):
    with pytest.raises(SystemExit) as caught:
        medview("add", "ann", "--role", "owner")
    assert caught.value.code == 2
