"""Models: register (multipart file + card), list, get; and synchronous prediction of one item."""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout
from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from app.api.datasets import filters_from
from app.api.deps import PixelsDep, PredictExecutorDep, RuntimesDep, SessionDep, SettingsDep, json_response
from app.inference import registry
from app.inference.evaluation import evaluate
from app.inference.predict import check_predictable, predict_item

router = APIRouter(prefix="/api")


class PredictRequest(BaseModel):
    model_id: int


@router.post("/models")
def add_model(session: SessionDep, settings: SettingsDep, file: Annotated[UploadFile, File()],
              card: Annotated[UploadFile | str, File()]) -> Response:
    """`file`: the ONNX / TorchScript model; `card`: the model card as an uploaded file or a text field."""
    card_text = card if isinstance(card, str) else card.file.read()
    card_filename = None if isinstance(card, str) else card.filename
    model = registry.add_model(session, settings, file.file, file.filename or "", card_text=card_text,
                               card_filename=card_filename)
    return json_response(registry.model_summary(model), 201)


@router.get("/models")
def list_models(session: SessionDep) -> Response:
    return json_response([registry.model_summary(m) for m in registry.list_models(session)])


@router.get("/models/{model_id}")
def get_model(model_id: int, session: SessionDep, settings: SettingsDep, runtimes: RuntimesDep) -> Response:
    model = registry.get_model(session, model_id)
    device = runtimes.get(model, settings.device).device
    return json_response({**registry.model_summary(model), "device": device})


@router.get("/models/{model_id}/evaluation")
def evaluation(model_id: int, dataset_id: int, request: Request, session: SessionDep) -> Response:
    """Metrics over the dataset's items (filtered by any facet field) with ground truth and a prediction."""
    filters = {k: v for k, v in filters_from(request).items() if k != "dataset_id"}
    return json_response(evaluate(session, model_id, dataset_id, filters))


@router.post("/items/{item_id}/predict")
def predict(item_id: int, body: PredictRequest, request: Request, session: SessionDep, settings: SettingsDep,
            pixels: PixelsDep, runtimes: RuntimesDep, executor: PredictExecutorDep) -> Response:
    """The prediction, synchronously — up to MEDVIEW_PREDICT_WAIT_SECONDS; a longer one (a large volume on CPU)
    answers 202 and is stored when it finishes (GET /api/items/{id} then lists it). Unknown or unfit item/model
    ids are refused here, before any wait, so their 404/400 is never lost to a 202."""
    check_predictable(session, item_id, body.model_id)
    session.close()
    factory = request.app.state.session_factory

    def run() -> dict:
        with factory() as session:
            return predict_item(session, settings, pixels, runtimes, item_id, body.model_id)

    future = executor.submit(run)  # it goes on (and is stored) after a 202
    try:
        return json_response(future.result(timeout=settings.predict_wait_seconds))
    except FutureTimeout:
        return json_response({"status": "running", "item_id": item_id, "model_id": body.model_id,
                              "detail": f"still running after {settings.predict_wait_seconds:g} s; it is stored "
                                        f"when done: GET /api/items/{item_id} lists it"}, 202)
