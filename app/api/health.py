"""GET /api/health: the app answers, and how its job queue is (the compose health check polls this).

The answer is 200 while the app serves: a queue that cannot be reached makes it `degraded` (with the reason in
`queue`), not unhealthy, so a Redis restart does not get the app's container restarted too."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app import __version__
from app.api.deps import QueueDep, SettingsDep, json_response
from app.api.schemas.health import Health, QueueHealth
from app.inference_device import describe_device

router = APIRouter()


@router.get("/api/health", response_model=Health)
def health(settings: SettingsDep, queue: QueueDep) -> Response:
    queue_health = QueueHealth.model_validate(queue.health())
    return json_response(Health(status="ok" if queue_health.ok else "degraded", database=settings.database_kind,
                                device=describe_device(settings.device), version=__version__,
                                queue=queue_health).model_dump(exclude_none=True))
