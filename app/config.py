"""Settings: the one place configuration is read (env vars `MEDVIEW_*`, or a `.env` file).

Only `app.main` and `app.cli` build a `Settings()`; everything else receives one, so tests can
build an isolated app with a temporary database and data dir.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVICE_CHOICES = ("auto", "cpu", "cuda")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDVIEW_", env_file=".env", extra="ignore")

    database_url: str = Field(
        "sqlite:///./medview.db",
        description="Any SQLAlchemy URL; postgresql+psycopg://… for PostgreSQL.",
    )
    data_dir: Path = Field(
        Path("./medview-data"),
        description="Where MedView writes: demo data, caches, user masks, exports.",
    )
    data_roots: str = Field(
        "",
        description="Colon-separated folders that ingest may read (default: the data dir). "
        "Nothing outside them is ever served.",
    )
    queue_url: str = Field("", description="Empty = in-process worker; redis://… for `medview worker`.")
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda, cuda:N.")
    slice_cache_mb: int = Field(512, ge=0, description="Memory for decoded CT slices (per process).")
    render_cache_mb: int = Field(128, ge=0, description="Memory for encoded rendered images (per process).")
    volume_cache_mb: int = Field(1024, ge=0, description="Memory for decompressed volumes (per process).")
    max_image_pixels: int = Field(100_000_000, ge=1, description="Largest 2-D image (width × height, from its "
                                  "header) that ingest indexes and the server decodes; larger ones are reported, "
                                  "never decoded (decompression bombs).")
    max_volume_voxels: int = Field(1024 ** 3 // 2, ge=1, description="Largest volume (NIfTI header shape, DICOM "
                                   "rows × columns × slices, HDF5 dataset) that is decoded.")
    max_decompressed_mb: int = Field(8192, ge=1, description="Largest size a .h5.gz may decompress to in the data "
                                     "dir; the partial copy is deleted when it is exceeded.")
    ingest_batch: int = Field(10000, ge=1, description="Items written per ingest transaction.")
    inference_batch: int = Field(64, ge=1, description="Items per model run (and per write transaction) in a job.")
    predict_wait_seconds: float = Field(20.0, gt=0, description="How long POST /api/items/{id}/predict waits "
                                        "before answering 202 and finishing in the background.")
    job_heartbeat_seconds: float = Field(10.0, gt=0, description="How often a running job's worker says it is alive.")
    job_stale_seconds: float = Field(60.0, gt=0, description="A running job silent this long is taken over.")
    secret_key: str = Field("", repr=False, description="Key that signs session cookies and CSRF tokens; generated "
                            "into the data dir (secret_key, mode 0600) when empty. Set it when several hosts serve.")
    public_read: bool = Field(False, description="Let anyone read pages and APIs without signing in "
                              "(writes still need a user with the right role).")
    session_max_age_hours: float = Field(12, gt=0, description="A sign-in lasts this long.")
    login_max_failures: int = Field(5, ge=1, description="Failed sign-ins per username in 15 minutes before "
                                    "further attempts are refused for a while (4x that per client address).")
    allowed_hosts: str = Field("localhost,127.0.0.1,::1", description="Comma-separated host names the server "
                               "answers to (the Host header; `*.example.org` wildcards, `*` for any); others get 400. "
                               "Guards a loopback install against DNS rebinding: add the names users type.")
    max_request_kb: int = Field(1024, ge=1, description="Largest request body (JSON, forms) in KB; larger is 413.")
    max_model_upload_mb: int = Field(2048, ge=1, description="Largest model file upload (POST /api/models) in MB.")
    allow_torchscript: bool = Field(False, description="Accept TorchScript model files (they can run code when "
                                    "loaded): admins only, and only when this is true.")

    @field_validator("device")
    @classmethod
    def _valid_device(cls, value: str) -> str:
        base = value.split(":", 1)[0]
        if base not in DEVICE_CHOICES or (":" in value and (base != "cuda" or not value[5:].isdigit())):
            raise ValueError(f"MEDVIEW_DEVICE must be auto, cpu, cuda or cuda:N, not {value!r}")
        return value

    @property
    def allowed_roots(self) -> list[Path]:
        """Folders ingest may read and the server may serve from, resolved (memoised: every image request asks)."""
        return list(_resolve_roots(self.data_roots, str(self.data_dir)))

    @property
    def database_kind(self) -> str:
        return "postgresql" if self.database_url.startswith("postgresql") else self.database_url.split(":")[0]


@lru_cache(maxsize=64)
def _resolve_roots(data_roots: str, data_dir: str) -> tuple[Path, ...]:
    roots = [Path(p).expanduser() for p in data_roots.split(":") if p.strip()] or [Path(data_dir)]
    return tuple(r.resolve() for r in roots)
