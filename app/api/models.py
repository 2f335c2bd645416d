"""Models: register (multipart file + card), list, get; and synchronous prediction of one item."""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from app.api.datasets import filters_from
from app.api.deps import PixelsDep, PredictExecutorDep, RuntimesDep, SessionDep, SettingsDep, json_response
from app.api.schemas.evaluation import Evaluation
from app.api.schemas.fields import PathId, QueryId
from app.api.schemas.models import (
    ModelDetail,
    ModelSummary,
    PredictionPending,
    PredictionResult,
    PredictRequest,
)
from app.api.schemas.responses import errors
from app.api.security import Principal, RequireRole, client_address
from app.errors import InvalidInput
from app.inference import registry
from app.inference.evaluation import evaluate
from app.inference.predict import check_predictable, predict_item

router = APIRouter(prefix="/api")
MAX_CARD_BYTES = 256 * 1024
Admin = Annotated[Principal, Depends(RequireRole("admin"))]
Reviewer = Annotated[Principal, Depends(RequireRole("reviewer"))]
# An empty card field is "missing" to FastAPI (422): the spec says so (a pydantic min_length would also try to
# measure an uploaded file, and fail).
CARD = File(json_schema_extra={"minLength": 1})


@router.post("/models", status_code=201, response_model=ModelSummary, responses=errors(400, 401, 403, 409, 413, 422))
def add_model(request: Request, session: SessionDep, settings: SettingsDep, admin: Admin,
              file: Annotated[UploadFile, File()], card: Annotated[UploadFile | str, CARD]) -> Response:
    """`file`: the ONNX / TorchScript model; `card`: the model card as an uploaded file or a text field (admin).
    The body is bounded by MEDVIEW_MAX_MODEL_UPLOAD_MB; TorchScript only when MEDVIEW_ALLOW_TORCHSCRIPT is on."""
    card_text = card if isinstance(card, str) else card.file.read(MAX_CARD_BYTES + 1)
    card_filename = None if isinstance(card, str) else card.filename
    if len(card_text) > MAX_CARD_BYTES:
        raise InvalidInput(f"card: a model card is at most {MAX_CARD_BYTES // 1024} KB")
    model = registry.add_model(session, settings, file.file, file.filename or "", card_text=card_text,
                               card_filename=card_filename, actor=admin, address=client_address(request))
    return json_response(registry.model_summary(model), 201)


@router.get("/models", response_model=list[ModelSummary])
def list_models(session: SessionDep) -> Response:
    return json_response([registry.model_summary(m) for m in registry.list_models(session)])


@router.get("/models/{model_id:int}", response_model=ModelDetail, responses=errors(400, 404, 422))
def get_model(model_id: PathId, session: SessionDep, settings: SettingsDep, runtimes: RuntimesDep) -> Response:
    model = registry.get_model(session, model_id)
    device = runtimes.get(model, settings.device).device
    return json_response({**registry.model_summary(model), "device": device})


@router.get("/models/{model_id}/evaluation", response_model=Evaluation, responses=errors(400, 404, 422))
def evaluation(model_id: PathId, dataset_id: QueryId, request: Request, session: SessionDep,
               annotations: Annotated[str, Query(json_schema_extra={"enum": ["current", "dataset"]})] = "current",
               ) -> Response:
    """Metrics over the dataset's items (filtered by any facet field) with ground truth and a prediction;
    `annotations=current|dataset`: against the current (corrected) annotations or the dataset's own (the enum is
    documented; another value is the service's 400 naming it, as before)."""
    filters = {k: v for k, v in filters_from(request).items() if k != "dataset_id"}
    return json_response(evaluate(session, model_id, dataset_id, filters, annotations))


@router.post("/items/{item_id}/predict", response_model=PredictionResult, responses={
    202: {"model": PredictionPending,
          "description": "Still running after MEDVIEW_PREDICT_WAIT_SECONDS; stored when done"},
    **errors(400, 401, 403, 404, 422)})
def predict(item_id: PathId, body: PredictRequest, request: Request, session: SessionDep, settings: SettingsDep,
            pixels: PixelsDep, runtimes: RuntimesDep, executor: PredictExecutorDep, _: Reviewer) -> Response:
    """The prediction, synchronously — up to MEDVIEW_PREDICT_WAIT_SECONDS; a longer one (a large volume on CPU)
    answers 202 and is stored when it finishes (GET /api/items/{id} then lists it). Unknown or unfit item/model
    ids are refused here, before any wait, so their 404/400 is never lost to a 202."""
    check_predictable(session, item_id, body.model_id)
    session.close()
    factory = request.app.state.session_factory

    def run() -> dict[str, Any]:
        with factory() as session:
            return predict_item(session, settings, pixels, runtimes, item_id, body.model_id)

    future = executor.submit(run)  # it goes on (and is stored) after a 202
    try:
        return json_response(future.result(timeout=settings.predict_wait_seconds))
    except FutureTimeout:
        pending = PredictionPending(status="running", item_id=item_id, model_id=body.model_id,
                                    detail=f"still running after {settings.predict_wait_seconds:g} s; it is stored "
                                           f"when done: GET /api/items/{item_id} lists it")
        return json_response(pending.model_dump(), 202)


class ModelDeleted(BaseModel):
    id: int
    name: str
    task: str
    runtime: str
    file: str
    predictions_removed: int


@router.delete("/models/{model_id:int}", response_model=ModelDeleted, responses=errors(401, 403, 404, 409, 422))
def delete_model(model_id: PathId, request: Request, session: SessionDep, settings: SettingsDep, admin: Admin,
                 runtimes: RuntimesDep) -> Response:
    """Remove a model with its predictions, metrics and files (admin); the audit log keeps what it was."""
    removed = registry.delete_model(session, settings, model_id, admin, client_address(request))
    runtimes.clear()
    return json_response(removed)
