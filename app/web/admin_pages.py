"""Admin pages: users (add, role, disable / enable), API tokens (create — shown once —, revoke), the audit log.

Plain HTML forms posting back to these routes with the session's CSRF token; each action calls the same
app.accounts services as app.api.admin and lands back on the page with a one-line result.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from app import audit
from app.accounts import tokens, users
from app.accounts.roles import ROLES
from app.api.deps import SessionDep
from app.api.security import Principal, RequireRole, client_address
from app.errors import AppError

router = APIRouter(include_in_schema=False)
Admin = Annotated[Principal, Depends(RequireRole("admin"))]


def _users_page(request: Request, session: SessionDep, status: int = 200, **context: Any) -> Response:
    everyone = users.list_users(session)
    names = {u.id: u.username for u in everyone}
    return request.app.state.templates.TemplateResponse(request, "admin_users.html", {
        "users": everyone, "roles": [r.value for r in ROLES],
        "tokens": [(t, names.get(t.user_id, "?")) for t in tokens.list_tokens(session)],
        "message": None, "error": None, "new_token": None, **context}, status_code=status)


@router.get("/admin/users", name="admin_users_page")
def admin_users_page(request: Request, session: SessionDep, _: Admin) -> Response:
    return _users_page(request, session)


@router.post("/admin/users", name="admin_users_submit")
def admin_users_submit(request: Request, session: SessionDep, admin: Admin,
                       action: Annotated[str, Form(max_length=32)],
                       username: Annotated[str, Form(max_length=64)] = "",
                       role: Annotated[str, Form(max_length=16)] = "viewer",
                       password: Annotated[str, Form(max_length=1024)] = "",
                       label: Annotated[str, Form(max_length=100)] = "",
                       token_id: Annotated[int, Form()] = 0) -> Response:
    address = client_address(request)
    new_token = None
    try:
        if action == "add":
            users.add_user(session, username, role, password, actor=admin, address=address)
            message = f"user {username} added as {role}"
        elif action == "role":
            users.set_role(session, username, role, actor=admin, address=address)
            message = f"{username} is now {role}"
        elif action == "disable":
            users.disable(session, username, actor=admin, address=address)
            message = f"{username} is disabled (sessions and tokens refused)"
        elif action == "enable":
            users.enable(session, username, actor=admin, address=address)
            message = f"{username} is enabled"
        elif action == "token":
            new_token, _row = tokens.create_token(session, users.get_user(session, username), label, actor=admin,
                                                  address=address)
            message = f"token for {username} created: copy it now, it is not shown again"
        elif action == "revoke":
            tokens.revoke_token(session, token_id, actor=admin, address=address)
            message = f"token {token_id} revoked"
        else:
            return _users_page(request, session, 400, error=f"unknown action {action!r}")
    except AppError as exc:
        session.rollback()
        return _users_page(request, session, exc.status_code, error=exc.detail)
    request.app.state.auth.forget()
    return _users_page(request, session, message=message, new_token=new_token)


@router.get("/admin/audit", name="admin_audit_page")
def admin_audit_page(request: Request, session: SessionDep, _: Admin, actor: str | None = None,
                     action: str | None = None, target_type: str | None = None,
                     cursor: str | None = None) -> Response:
    filters = {k: v for k, v in (("actor", actor), ("action", action), ("target_type", target_type)) if v}
    page = audit.query(session, actor=actor or None, action=action or None, target_type=target_type or None,
                       limit=100, cursor=cursor)
    return request.app.state.templates.TemplateResponse(request, "admin_audit.html",
                                                        {"page": page, "filters": filters})
