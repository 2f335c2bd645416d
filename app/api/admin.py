"""Administration over HTTP (admin role): users, their roles and API tokens, and the audit log.

Every change goes through app.accounts (which writes the audit event in the same transaction) and then drops
the app's cached sign-in answers, so a disabled user or a revoked token is refused from the next request on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app import audit
from app.accounts import tokens, users
from app.api.deps import SessionDep, json_response
from app.api.schemas.fields import IsoDateTime, PathId, RequestBody
from app.api.schemas.responses import errors
from app.api.security import Principal, RequireRole, client_address
from app.db.models import ApiToken, User

router = APIRouter(prefix="/api", tags=["admin"])
Admin = Annotated[Principal, Depends(RequireRole("admin"))]
RoleName = Literal["viewer", "annotator", "reviewer", "admin"]


class UserIn(RequestBody):
    username: str = Field(min_length=1, max_length=64)
    role: RoleName = "viewer"
    password: str = Field(min_length=1, max_length=1024)


class UserChange(RequestBody):
    role: RoleName | None = None
    disabled: bool | None = None


class TokenIn(RequestBody):
    name: str = Field("", max_length=100)


class UserOut(BaseModel):
    username: str
    role: str
    disabled: bool
    created_at: str


class TokenOut(BaseModel):
    id: int
    user: str
    name: str
    prefix: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class NewTokenOut(TokenOut):
    token: str = Field(description="the token itself, shown this once (only its hash is stored)")


def user_dict(user: User) -> dict[str, Any]:
    return {"username": user.username, "role": user.role, "disabled": user.disabled,
            "created_at": user.created_at.isoformat()}


def token_dict(token: ApiToken, owner: str) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {"id": token.id, "user": owner, "name": token.name, "prefix": token.prefix,
            "created_at": token.created_at.isoformat(), "last_used_at": iso(token.last_used_at),
            "revoked_at": iso(token.revoked_at)}


def _changed(request: Request) -> None:
    request.app.state.auth.forget()


@router.get("/users", response_model=list[UserOut], responses=errors(401, 403))
def list_users(session: SessionDep, _: Admin) -> Response:
    return json_response([user_dict(u) for u in users.list_users(session)])


@router.post("/users", response_model=UserOut, status_code=201, responses=errors(400, 401, 403, 409, 422))
def add_user(body: UserIn, request: Request, session: SessionDep, admin: Admin) -> Response:
    user = users.add_user(session, body.username, body.role, body.password, actor=admin,
                          address=client_address(request))
    return json_response(user_dict(user), 201)


@router.patch("/users/{username}", response_model=UserOut, responses=errors(400, 401, 403, 404, 409, 422))
def change_user(username: str, body: UserChange, request: Request, session: SessionDep, admin: Admin) -> Response:
    address = client_address(request)
    user = users.get_user(session, username)
    if body.role is not None and body.role != user.role:
        user = users.set_role(session, username, body.role, actor=admin, address=address)
    if body.disabled is True and not user.disabled:
        user = users.disable(session, username, actor=admin, address=address)
    elif body.disabled is False and user.disabled:
        user = users.enable(session, username, actor=admin, address=address)
    _changed(request)
    return json_response(user_dict(user))


@router.get("/tokens", response_model=list[TokenOut], responses=errors(401, 403, 404, 422))
def list_tokens(session: SessionDep, _: Admin, user: str | None = None) -> Response:
    owner = users.get_user(session, user) if user else None
    names = {u.id: u.username for u in users.list_users(session)}
    return json_response([token_dict(t, names.get(t.user_id, "?")) for t in tokens.list_tokens(session, owner)])


@router.post("/users/{username}/tokens", status_code=201, response_model=NewTokenOut,
             responses=errors(400, 401, 403, 404, 422))
def create_token(username: str, body: TokenIn, request: Request, session: SessionDep, admin: Admin) -> Response:
    owner = users.get_user(session, username)
    plaintext, row = tokens.create_token(session, owner, body.name, actor=admin, address=client_address(request))
    return json_response({**token_dict(row, owner.username), "token": plaintext}, 201)


@router.delete("/tokens/{token_id}", response_model=TokenOut, responses=errors(401, 403, 404, 422))
def revoke_token(token_id: PathId, request: Request, session: SessionDep, admin: Admin) -> Response:
    row = tokens.revoke_token(session, token_id, actor=admin, address=client_address(request))
    _changed(request)
    owner = session.get(User, row.user_id)
    return json_response(token_dict(row, owner.username if owner else "?"))


@router.get("/audit", response_model=audit.AuditPage, responses=errors(400, 401, 403, 422))
def audit_log(session: SessionDep, _: Admin, actor: str | None = None, action: str | None = None,
              target_type: str | None = None, target_id: str | None = None, since: IsoDateTime | None = None,
              until: IsoDateTime | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
              cursor: str | None = None) -> Response:
    """Every security event and write, newest first; `action=user.*` matches a prefix."""
    return json_response(audit.query(session, actor=actor, action=action, target_type=target_type,
                                     target_id=target_id, since=since, until=until, limit=limit, cursor=cursor))
