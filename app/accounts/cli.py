"""`medview users …`: add, list, set-role, disable, enable, password, token, tokens, revoke-token.

Passwords are read from standard input (one line) when it is not a terminal, so scripts can pipe them in,
and prompted for twice otherwise; never from an argument, which would land in the shell history and `ps`.
`users token` prints the new token alone on the last line of stdout (shown once; only its hash is stored);
every other message goes to stderr. Actions are audited as actor `cli:<login name>`.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TextIO

from sqlalchemy import Engine

from app.accounts.roles import ROLES
from app.config import Settings
from app.errors import InvalidInput


def add_users_command(subparsers: argparse._SubParsersAction) -> None:
    """Register `users` and its actions on the `medview` parser's subparsers."""
    p = subparsers.add_parser("users", help="manage users and API tokens")
    sub = p.add_subparsers(dest="users_action", required=True)
    roles = list(ROLES)
    a = sub.add_parser("add", help="add a user (password from stdin, or prompted twice on a terminal)")
    a.add_argument("name")
    a.add_argument("--role", default="viewer", type=str.lower, choices=roles, help="default: viewer")
    sub.add_parser("list", help="users: name, role, enabled or disabled, created")
    a = sub.add_parser("set-role", help="change a user's role")
    a.add_argument("name")
    a.add_argument("role", type=str.lower, choices=roles)
    for action, text in (("disable", "refuse the user's sign-ins, tokens and open sessions"),
                         ("enable", "let a disabled user sign in again"),
                         ("password", "set a new password (stdin or prompt); signs the user out everywhere")):
        sub.add_parser(action, help=text).add_argument("name")
    a = sub.add_parser("token", help="create an API token; printed once, on the last line of stdout")
    a.add_argument("name")
    a.add_argument("--name", dest="label", default="", help="what the token is for")
    a = sub.add_parser("tokens", help="list API tokens (of one user, or everyone's)")
    a.add_argument("name", nargs="?")
    a = sub.add_parser("revoke-token", help="revoke an API token by id")
    a.add_argument("token_id", type=int)
    p.set_defaults(func=run)


def read_password(stdin: TextIO | None = None) -> str:
    """One line of a piped stdin, or the same password typed twice at a terminal."""
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password (again): ") != first:
        raise InvalidInput("the two passwords differ; nothing changed")
    return first


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (a container without a passwd entry)
        return "cli"


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _ensure_schema(engine: Engine, settings: Settings) -> None:
    """As `medview serve` does (app.cli): bring a local SQLite file up to date, ask for `medview db upgrade`
    on any other database. Repeated here so this module does not import the whole command line."""
    from app.db.migrate import is_current, upgrade

    if is_current(engine):
        return
    if settings.database_kind != "sqlite":
        raise InvalidInput(f"database {settings.database_kind} is not at the newest schema; "
                           "run `medview db upgrade` first")
    upgrade(settings.database_url)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from app.accounts import tokens, users
    from app.db.session import make_engine, make_session_factory

    actor = cli_actor()
    engine = make_engine(settings.database_url)
    try:
        _ensure_schema(engine, settings)
        with make_session_factory(engine)() as session:
            action = args.users_action
            if action == "add":
                user = users.add_user(session, args.name, args.role, read_password(), actor=actor)
                _say(f"added {user.username} ({user.role})")
            elif action == "list":
                for u in users.list_users(session):
                    state = "disabled" if u.disabled else "enabled"
                    _out(f"{u.id}  {u.username}  {u.role}  {state}  created {u.created_at:%Y-%m-%d %H:%M}")
            elif action == "set-role":
                user = users.set_role(session, args.name, args.role, actor=actor)
                _say(f"{user.username} is now {user.role}")
            elif action == "disable":
                _say(f"disabled {users.disable(session, args.name, actor=actor).username}")
            elif action == "enable":
                _say(f"enabled {users.enable(session, args.name, actor=actor).username}")
            elif action == "password":
                user = users.get_user(session, args.name)
                users.set_password(session, user.username, read_password(), actor=actor)
                _say(f"new password set for {user.username}; their open sessions are signed out")
            elif action == "token":
                user = users.get_user(session, args.name)
                plaintext, row = tokens.create_token(session, user, args.label, actor=actor)
                _say(f"token {row.id} ({row.name}) for {user.username}; it is shown once, now:")
                _out(plaintext)
            elif action == "tokens":
                owner = users.get_user(session, args.name) if args.name else None
                names = {u.id: u.username for u in users.list_users(session)}
                for t in tokens.list_tokens(session, owner):
                    state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
                    used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
                    _out(f"{t.id}  {names.get(t.user_id, '?')}  {t.name}  {t.prefix}…  {state}  last used {used}")
            elif action == "revoke-token":
                row = tokens.revoke_token(session, args.token_id, actor=actor)
                _say(f"token {row.id} ({row.prefix}…) revoked")
    finally:
        engine.dispose()
    return 0
