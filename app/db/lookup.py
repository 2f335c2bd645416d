"""Database helpers shared by the services."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

from app.errors import NotFound

T = TypeVar("T")


def get_or_404(session: Session, model: type[T], ident: int, what: str) -> T:
    """The row with this primary key, or NotFound("<what> <id> not found")."""
    row = session.get(model, ident)
    if row is None:
        raise NotFound(f"{what} {ident} not found")
    return row
