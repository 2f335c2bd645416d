from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app import __version__
from app.api.deps import SettingsDep, json_response
from app.api.schemas.health import Health
from app.inference_device import describe_device

router = APIRouter()


@router.get("/api/health", response_model=Health)
def health(settings: SettingsDep) -> Response:
    return json_response(Health(status="ok", database=settings.database_kind, device=describe_device(settings.device),
                                version=__version__).model_dump())
