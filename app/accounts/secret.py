"""The key that signs session cookies and CSRF tokens.

`MEDVIEW_SECRET_KEY` (Settings.secret_key) when set — several app processes or hosts must share one key —
otherwise a random key generated once into `data_dir/secret_key` (mode 0600) and reused, so a single-host
install is secure with no configuration and sessions survive restarts. The file is written to a temporary
name and hard-linked into place, so two processes starting together never read a half-written key and agree
on whichever was linked first. `is_weak` lets the app refuse (or warn about) a key someone typed.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from app.errors import InvalidInput

log = logging.getLogger(__name__)

SECRET_FILE = "secret_key"
MIN_LENGTH = 32
KNOWN_DEFAULTS = frozenset({
    "changeme", "change-me", "change_me", "changethis", "secret", "secret-key", "secret_key", "secretkey",
    "medview", "medview-secret", "password", "default", "development", "dev", "test", "insecure", "key",
    "your-secret-key", "supersecret", "please-change-me",
})


def is_weak(secret: str) -> bool:
    """Empty, shorter than 32 characters, a known default, or made of only a few distinct characters."""
    value = (secret or "").strip()
    return (len(value) < MIN_LENGTH or value.lower() in KNOWN_DEFAULTS or len(set(value)) < 8)


def load_or_create_secret(data_dir: Path | str, configured: str | None = None) -> str:
    """The signing key: `configured` (pass Settings.secret_key; None reads MEDVIEW_SECRET_KEY) when not empty,
    else the key in data_dir/secret_key, created on first use. A weak file key is refused (InvalidInput),
    since this module never writes one: someone edited it."""
    if configured is None:
        configured = os.environ.get("MEDVIEW_SECRET_KEY", "")
    if configured.strip():
        if is_weak(configured):
            log.warning("MEDVIEW_SECRET_KEY is weak (short, a known default or repetitive); use 32+ random "
                        "characters, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`")
        return configured.strip()
    path = Path(data_dir) / SECRET_FILE
    if not path.exists():
        _create(path)
    value = path.read_text().strip()
    if is_weak(value):
        raise InvalidInput(f"the signing key in {path} is weak or damaged; delete the file to generate a new one")
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; run `chmod 600 %s`", path, path)
    return value


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if another process linked its key first: then that key is the one
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links: move into place unless someone was first
            if not path.exists():
                os.replace(tmp, path)
        else:
            log.info("generated a new signing key in %s", path)
    finally:
        tmp.unlink(missing_ok=True)
