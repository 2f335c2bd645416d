"""GET /api/health."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class QueueHealth(BaseModel):
    backend: Literal["inprocess", "redis"] = Field(
        description="`inprocess`: the app's own worker thread (MEDVIEW_QUEUE_URL empty); `redis`: RQ queues "
                    "served by `medview worker` processes.")
    ok: bool = Field(description="The worker thread runs / Redis answers.")
    detail: str | None = Field(None, description="Why not ok (for Redis only the kind of error: health is public).")
    queued: dict[str, int] | None = Field(None, description="Redis: jobs waiting per named queue (`gpu`, `cpu`).")
    workers: dict[str, int] | None = Field(None, description="Redis: `medview worker` processes serving each "
                                                             "named queue (none on `gpu`: predict jobs wait).")


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="`degraded` when the job queue cannot be reached or its worker thread stopped: pages and "
                    "reads still work, starting a job or an export answers 503. The answer is 200 either way, "
                    "so a Redis blip does not make the app's container unhealthy.")
    database: str = Field(description="Database backend: `sqlite` or `postgresql`.")
    device: str = Field(description="Where inference runs: `cpu`, `cuda:0`, …")
    version: str = Field(description="MedView version.")
    queue: QueueHealth = Field(description="The job queue.")
