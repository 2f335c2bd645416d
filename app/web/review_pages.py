"""Review pages: "My queues" (`/review`), a queue's page (`/review/queues/{id}`: progress per reader, agreement with
the Bland–Altman plot of the readers' long axes, disputed items, adjudication and sign-off) and "Start" (the
reader's next item in the viewer's review mode). The same app.review services as the JSON API."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.accounts.roles import at_least
from app.api.deps import SessionDep
from app.catalog import queries, urls
from app.db.models import ReviewQueue
from app.review import queues

router = APIRouter(include_in_schema=False)

PLOT_SIZE, PLOT_PAD = 300, 40  # the Bland–Altman plot square (SVG user units), as the ROC plots


def _render(request: Request, template: str, context: dict[str, Any]) -> Response:
    return request.app.state.templates.TemplateResponse(request, template,
                                                        {"url_templates": urls.url_templates(),
                                                         "review_urls": review_urls(request), **context})


SENTINEL = 987654321  # a path parameter value replaced by `{name}` in the URL templates below


def review_urls(request: Request) -> dict[str, str]:
    """The review URLs the scripts use (review mode, the queue page, the dataset page's queue dialog), as
    templates with `{queue_id}` / `{item_id}` fields, built from the routes' own names."""

    def template(name: str, **params: int) -> str:
        path = request.url_for(name, **params).path
        for field in params:
            path = path.replace(str(SENTINEL), "{" + field + "}", 1)
        return path

    q = {"queue_id": SENTINEL}
    return {"queues": template("create_queue"), "queue": template("get_queue", **q),
            "queue_page": template("review_queue_page", **q), "reader": template("reader_state", **q),
            "undo": template("undo_verdict", **q), "sign_off": template("sign_off", **q),
            "adjudication": template("adjudication", **q), "suggestions": template("queue_suggestions"),
            "reviews": template("add_review", item_id=SENTINEL), "comments": template("add_comment", item_id=SENTINEL),
            "item": template("get_item", item_id=SENTINEL), "item_page": template("item_page", item_id=SENTINEL),
            "raw": template("raw", item_id=SENTINEL), "users": template("list_users")}


def _reader(request: Request) -> tuple[str | None, str | None]:
    principal = getattr(request.state, "principal", None)
    return (principal.username, principal.role) if principal is not None else (None, None)


def _dataset_names(session: SessionDep) -> dict[int, str]:
    return {d["id"]: d["name"] for d in queries.list_datasets(session)}


@router.get("/review", name="review_page")
def review_page(request: Request, session: SessionDep) -> Response:
    """Every queue with what is left for me and for everyone; Start / Continue for the queues I may read."""
    username, role = _reader(request)
    listed = queues.list_queues(session, username)
    can_read = role is not None and at_least(role, "reviewer")
    for q in listed:
        p = q["progress"]
        needed = p["items"] * q["readers_per_item"]
        q["all_share"] = p["reads_done"] / needed if needed else 1.0
        mine_read = next((r["read"] for r in p["per_reader"] if r["reader"] == username), 0)
        q["mine_read"] = mine_read
        mine_total = mine_read + (p["left_for_me"] or 0)
        q["mine_share"] = mine_read / mine_total if mine_total else 1.0
        q["may_read"] = can_read and (not q["assignees"] or username in q["assignees"])
    return _render(request, "review.html", {"queues": listed, "datasets": _dataset_names(session)})


@router.get("/review/queues/{queue_id}/start", name="review_start")
def review_start(queue_id: int, request: Request, session: SessionDep) -> Response:
    """Open the viewer in review mode on my next item (the queue page when nothing is left for me)."""
    principal = getattr(request.state, "principal", None)
    if principal is None or not at_least(principal.role, "reviewer"):  # (public read) only reviewers read
        return RedirectResponse(request.url_for("review_queue_page", queue_id=queue_id).path, status_code=303)
    found = queues.next_item(session, queue_id, principal)
    if found is None:
        return RedirectResponse(request.url_for("review_queue_page", queue_id=queue_id).path, status_code=303)
    target = request.url_for("item_page", item_id=found["item"]["id"]).path
    return RedirectResponse(f"{target}?queue={queue_id}", status_code=303)


@router.get("/review/queues/{queue_id}", name="review_queue_page")
def review_queue_page(queue_id: int, request: Request, session: SessionDep) -> Response:
    username, role = _reader(request)
    queue = queues.detail(session, queue_id, username)
    agreement = queue["agreement"]
    keys = queues.item_keys(session, agreement["disputed_items"]) if agreement["disputed_items"] else {}
    row = session.get(ReviewQueue, queue_id)
    lead = row is not None and role is not None and principal_may_sign(row, username, role)
    p = queue["progress"]
    return _render(request, "review_queue.html", {
        "queue": queue, "agreement": agreement, "dataset_name": _dataset_names(session).get(queue["dataset_id"]),
        "disputed": [{"id": i, "key": keys.get(i, str(i))} for i in agreement["disputed_items"]],
        "plot": bland_altman_plot(agreement["long_axis"]),
        "may_read": role is not None and at_least(role, "reviewer")
        and (not queue["assignees"] or username in queue["assignees"]),
        "may_adjudicate": role is not None and at_least(role, "reviewer"),
        "may_sign_off": lead and queue["signed_off_at"] is None and p["complete"] == p["items"], "lead": lead})


def principal_may_sign(queue: ReviewQueue, username: str | None, role: str) -> bool:
    return at_least(role, "admin") or (at_least(role, "reviewer") and username == queue.created_by)


def _nice_step(span: float) -> float:
    raw = span / 4 if span > 0 else 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def bland_altman_plot(long_axis: dict[str, Any]) -> dict[str, Any] | None:
    """SVG geometry of the Bland–Altman plot: x the pair's mean long axis (mm), y the difference (first − second,
    mm); the points, the bias line and the ±1.96 SD limits, ticks on both axes. None without a pair."""
    pairs = long_axis["pairs"]
    if not pairs:
        return None
    xs = [p["mean_mm"] for p in pairs]
    ys = [p["diff_mm"] for p in pairs] + [long_axis["bias_mm"]] + list(long_axis["limits_mm"] or [])
    x0, x1 = min(xs), max(xs)
    x_pad = max((x1 - x0) * 0.1, 1.0)
    x0, x1 = x0 - x_pad, x1 + x_pad
    y_abs = max(max(abs(v) for v in ys) * 1.15, 1.0)
    y0, y1 = -y_abs, y_abs
    s, pad = PLOT_SIZE, PLOT_PAD

    def sx(v: float) -> float:
        return round(pad + (v - x0) / (x1 - x0) * s, 1)

    def sy(v: float) -> float:
        return round(pad + (1 - (v - y0) / (y1 - y0)) * s, 1)

    def ticks(lo: float, hi: float) -> list[float]:
        step = _nice_step(hi - lo)
        first = math.ceil(lo / step) * step
        return [round(first + n * step, 6) for n in range(int((hi - first) / step) + 1)]

    lines = [{"y": sy(long_axis["bias_mm"]), "label": f"bias {long_axis['bias_mm']:+.2f} mm", "kind": "bias"}]
    for v, name in zip(long_axis["limits_mm"] or [], ("−1.96 SD", "+1.96 SD"), strict=False):
        lines.append({"y": sy(v), "label": f"{name} {v:+.2f} mm", "kind": "limit"})
    return {"size": s, "pad": pad, "x0": pad, "x1": pad + s,
            "points": [{"x": sx(p["mean_mm"]), "y": sy(p["diff_mm"]), "item_id": p["item_id"],
                        "title": f"item {p['item_id']}: {p['first_mm']:.1f} vs {p['second_mm']:.1f} mm"}
                       for p in pairs],
            "lines": lines, "zero": sy(0.0),
            "x_ticks": [{"x": sx(v), "label": f"{v:g}"} for v in ticks(x0, x1)],
            "y_ticks": [{"y": sy(v), "label": f"{v:g}"} for v in ticks(y0, y1)]}
