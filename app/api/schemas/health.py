"""GET /api/health."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"]
    database: str = Field(description="Database backend: `sqlite` or `postgresql`.")
    device: str = Field(description="Where inference runs: `cpu`, `cuda:0`, …")
    version: str = Field(description="MedView version.")
