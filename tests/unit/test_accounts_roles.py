"""Roles are ordered viewer < annotator < reviewer < admin; each may do what the ones before it may."""

from __future__ import annotations

import pytest

from app.accounts.roles import ROLES, Role, at_least, parse_role
from app.errors import InvalidInput


def test_order_is_viewer_annotator_reviewer_admin():
    assert [r.value for r in ROLES] == ["viewer", "annotator", "reviewer", "admin"]


@pytest.mark.parametrize(("role", "needed", "allowed"), [
    ("viewer", "viewer", True), ("viewer", "annotator", False),
    ("annotator", "viewer", True), ("annotator", "reviewer", False),
    ("reviewer", "annotator", True), ("reviewer", "admin", False),
    ("admin", "viewer", True), ("admin", "admin", True),
    (Role.reviewer, Role.reviewer, True),
])
def test_at_least(role, needed, allowed):
    assert at_least(role, needed) is allowed


def test_unknown_role_may_do_nothing():
    assert not at_least("owner", "viewer")
    assert not at_least("", "viewer")


def test_parse_role_names_the_choices():
    assert parse_role(" Reviewer ") is Role.reviewer
    with pytest.raises(InvalidInput, match="role must be one of viewer, annotator, reviewer, admin, not 'root'"):
        parse_role("root")
