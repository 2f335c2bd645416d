"""Few-shot classifiers on an embedding model's vectors (issue 15): train one (admin, like adding a model) and
the label curve (a read). Thin: app.embeddings.fewshot does the work."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from app.api.deps import SessionDep, SettingsDep, json_response
from app.api.schemas.fewshot import FewshotCurve, FewshotIn, FewshotOut, Method, Source
from app.api.schemas.fields import PathId, QueryId
from app.api.schemas.responses import errors
from app.api.security import Principal, RequireRole, client_address
from app.embeddings import fewshot

router = APIRouter(prefix="/api/models", tags=["models"])
Admin = Annotated[Principal, Depends(RequireRole("admin"))]


@router.post("/fewshot", status_code=201, response_model=FewshotOut, responses=errors(400, 401, 403, 404, 409, 422))
def train_fewshot(body: FewshotIn, request: Request, session: SessionDep, settings: SettingsDep,
                  admin: Admin) -> Response:
    """Train a classifier on `per_class` labelled items per class of the embedder's stored vectors and register
    it as a classify model (embedder + linear head, one ONNX file); its predictions for the dataset's other
    embedded items are written at once. 400: not an embedder, no vectors, a class with too few labels; 404:
    unknown model or dataset; 409: the name is taken."""
    out = fewshot.train(session, settings, embed_model_id=body.embed_model_id, dataset_id=body.dataset_id,
                        per_class=body.per_class, source=body.source, method=body.method, seed=body.seed,
                        name=body.name, actor=admin, address=client_address(request))
    return json_response(out, 201)


@router.get("/{model_id}/fewshot-curve", response_model=FewshotCurve, responses=errors(400, 404, 422))
def fewshot_curve(model_id: PathId, dataset_id: QueryId, session: SessionDep, settings: SettingsDep,
                  source: Source = "labels", method: Method = "logistic",
                  draws: Annotated[int, Query(ge=2, le=20)] = 5,
                  seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0) -> Response:
    """Balanced accuracy on the held-out labelled items against labels per class (1, 5, 10, 25, 50, 100, 250
    where the classes have that many and one more), mean ± sd over `draws` random draws."""
    return json_response(fewshot.curve(session, settings, model_id, dataset_id, source=source, method=method,
                                       draws=draws, seed=seed))
