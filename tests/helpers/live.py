"""HTTP calls from browser tests to their live server, signed in: `live_server` registers an API token for its
base URL here, and these wrappers send it (the pages themselves sign in with the context's session cookie)."""

from __future__ import annotations

from typing import Any

import httpx

TOKENS: dict[str, str] = {}  # live server base URL → API token


def auth_for(url: str) -> dict[str, str]:
    for base, token in TOKENS.items():
        if url.startswith(base):
            return {"Authorization": f"Bearer {token}"}
    return {}


def live_client(base: str, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=base, headers=auth_for(base), **kwargs)


def live_get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, headers=auth_for(url), **kwargs)
