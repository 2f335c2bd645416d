"""Models: register (multipart file + card), list, get; and synchronous prediction of one item."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import Response

from app.api.datasets import filters_from
from app.api.deps import RendererDep, RuntimesDep, SessionDep, SettingsDep, json_response
from app.api.schemas.evaluation import Evaluation
from app.api.schemas.models import (
    ModelDetail,
    ModelSummary,
    PredictionPending,
    PredictionResult,
    PredictRequest,
)
from app.api.schemas.responses import errors
from app.inference import registry
from app.inference.evaluation import evaluate
from app.inference.predict import check_predictable, predict_item

router = APIRouter(prefix="/api")


@router.post("/models", status_code=201, response_model=ModelSummary, responses=errors(400, 409, 422))
def add_model(session: SessionDep, settings: SettingsDep, file: Annotated[UploadFile, File()],
              card: Annotated[UploadFile | str, File()]) -> Response:
    """`file`: the ONNX / TorchScript model; `card`: the model card as an uploaded file or a text field."""
    card_text = card if isinstance(card, str) else card.file.read()
    card_filename = None if isinstance(card, str) else card.filename
    model = registry.add_model(session, settings, file.file, file.filename or "", card_text=card_text,
                               card_filename=card_filename)
    return json_response(registry.model_summary(model), 201)


@router.get("/models", response_model=list[ModelSummary])
def list_models(session: SessionDep) -> Response:
    return json_response([registry.model_summary(m) for m in registry.list_models(session)])


@router.get("/models/{model_id}", response_model=ModelDetail, responses=errors(400, 404, 422))
def get_model(model_id: int, session: SessionDep, settings: SettingsDep, runtimes: RuntimesDep) -> Response:
    model = registry.get_model(session, model_id)
    device = runtimes.get(model, settings.device).device
    return json_response({**registry.model_summary(model), "device": device})


@router.get("/models/{model_id}/evaluation", response_model=Evaluation, responses=errors(400, 404, 422))
def evaluation(model_id: int, dataset_id: int, request: Request, session: SessionDep) -> Response:
    """Metrics over the dataset's items (filtered by any facet field) with ground truth and a prediction."""
    filters = {k: v for k, v in filters_from(request).items() if k != "dataset_id"}
    return json_response(evaluate(session, model_id, dataset_id, filters))


# On-demand predictions run here, so a request can stop waiting while the prediction goes on to be stored.
_ON_DEMAND = ThreadPoolExecutor(max_workers=2, thread_name_prefix="predict")


@router.post("/items/{item_id}/predict", response_model=PredictionResult, responses={
    202: {"model": PredictionPending,
          "description": "Still running after MEDVIEW_PREDICT_WAIT_SECONDS; stored when done"},
    **errors(400, 404, 422)})
def predict(item_id: int, body: PredictRequest, request: Request, session: SessionDep, settings: SettingsDep,
            renderer: RendererDep, runtimes: RuntimesDep) -> Response:
    """The prediction, synchronously — up to MEDVIEW_PREDICT_WAIT_SECONDS; a longer one (a large volume on CPU)
    answers 202 and is stored when it finishes (GET /api/items/{id} then lists it). Unknown or unfit item/model
    ids are refused here, before any wait, so their 404/400 is never lost to a 202."""
    check_predictable(session, item_id, body.model_id)
    session.close()
    factory = request.app.state.session_factory

    def run() -> dict[str, Any]:
        with factory() as session:
            return predict_item(session, settings, renderer, runtimes, item_id, body.model_id)

    future = _ON_DEMAND.submit(run)
    try:
        return json_response(future.result(timeout=settings.predict_wait_seconds))
    except FutureTimeout:
        pending = PredictionPending(status="running", item_id=item_id, model_id=body.model_id,
                                    detail=f"still running after {settings.predict_wait_seconds:g} s; it is stored "
                                           f"when done: GET /api/items/{item_id} lists it")
        return json_response(pending.model_dump(), 202)
