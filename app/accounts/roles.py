"""The four roles, lowest to highest; each can do all that the ones before it can (REVIEW.md, "Who does what").

The order lives here and only here, so a permission check is one comparison (`at_least(user.role, "reviewer")`)
and a fifth role would be one line. The database holds the same four names in a CHECK constraint (0006).
"""

from __future__ import annotations

from enum import StrEnum

from app.errors import InvalidInput


class Role(StrEnum):
    viewer = "viewer"
    annotator = "annotator"
    reviewer = "reviewer"
    admin = "admin"


ROLES: tuple[Role, ...] = (Role.viewer, Role.annotator, Role.reviewer, Role.admin)
_RANK = {role: rank for rank, role in enumerate(ROLES)}


def parse_role(value: str) -> Role:
    """The Role named `value` (any case), or InvalidInput naming the field and the choices."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {value!r}") from None


def at_least(role: str | Role, needed: str | Role) -> bool:
    """True when `role` may do what `needed` may (an unknown role may do nothing; an unknown `needed` is a bug)."""
    try:
        have = _RANK[Role(role)]
    except ValueError:
        return False
    return have >= _RANK[Role(needed)]
