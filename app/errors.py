"""One error tree, mapped to HTTP once (in `app.main`): bad input is never a 500."""

from __future__ import annotations


class AppError(Exception):
    status_code = 500
    extra: dict | None = None  # more keys of the error body beside `detail` (a 409 carries the current version)

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotFound(AppError):
    status_code = 404


class InvalidInput(AppError):
    status_code = 400


class Conflict(AppError):
    status_code = 409


class Unsupported(AppError):
    status_code = 415


class Forbidden(AppError):
    status_code = 403
