"""Under load, a finished request hands its database connection back without queueing for a route thread
(app.api.deps.get_session): with fewer route threads than pooled connections, every route thread could wait for
a connection while the connections sat in finished requests waiting for a thread to close them — a deadlock
until the pool's 30 s timeout (found with bench/load.py: multi-second stalls with the default threadpool)."""

from __future__ import annotations

import asyncio

import anyio.to_thread
import httpx

from app.main import create_app
from tests.helpers.auth import api_token


def test_many_concurrent_reads_with_a_small_threadpool_all_finish(settings, ingested):
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {api_token(settings)}"}

    async def run() -> list[int]:
        async with app.router.lifespan_context(app):
            anyio.to_thread.current_default_thread_limiter().total_tokens = 2  # fewer than the pool's connections
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost", headers=headers) as c:
                await c.get("/api/datasets")  # the token is cached from here on
                calls = [c.get(f"/api/datasets/{ingested.dataset_id}/items?limit=5") for _ in range(60)]
                responses = await asyncio.wait_for(asyncio.gather(*calls), timeout=20)
            return [r.status_code for r in responses]

    statuses = asyncio.run(run())  # a new event loop: the small threadpool ends with it
    assert statuses == [200] * 60
