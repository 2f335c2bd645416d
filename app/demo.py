"""`medview demo`: generate sample datasets in their real layouts under the data dir, index them, and run the
demo models (app.demo_models) over them."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from app.config import Settings
from app.datasets.ingest import ingest_path
from app.datasets.registry import available_kinds
from app.datasets.roots import DataRoots
from app.db.session import make_engine, make_session_factory
from app.demo_models import register_and_predict

DEMO_DIR = "demo"
# kind → "module:function"; the function writes a small sample in the kind's real layout into a folder.
DEMO_SAMPLES = {
    "deeplesion": "app.datasets.deeplesion.synth:demo_sample",
    "pcam": "app.datasets.pcam.synth:demo_sample",
    "bis5k": "app.datasets.bis5k.synth:demo_sample",
    "verse": "app.datasets.verse.synth:demo_sample",
    "imagefolder": "app.datasets.imagefolder.synth:demo_sample",
    "dicom": "app.datasets.dicom.synth:demo_sample",
    "nifti": "app.datasets.nifti.synth:demo_sample",
}


def _sample_generator(kind: str) -> Callable[[Path], object] | None:
    if kind not in available_kinds():
        return None
    module_name, _, func = DEMO_SAMPLES[kind].partition(":")
    return getattr(importlib.import_module(module_name), func)


def build_demo(settings: Settings, progress_console: Console | None = None) -> Settings:
    """Create (once) and index the demo datasets; returns settings whose data roots include them."""
    demo_root = (settings.data_dir / DEMO_DIR).resolve()
    roots = [str(r) for r in settings.allowed_roots]
    if not DataRoots(settings.allowed_roots).contains(demo_root):
        roots.append(str(demo_root))
    settings = settings.model_copy(update={"data_roots": ":".join(roots)})
    samples = {kind: generate for kind in DEMO_SAMPLES if (generate := _sample_generator(kind)) is not None}
    engine = make_engine(settings.database_url)
    dataset_ids: dict[str, int] = {}
    try:
        for kind, generate in samples.items():
            target = demo_root / kind
            if not (target / ".complete").exists():
                if progress_console:
                    progress_console.print(f"generating demo {kind} sample in {target}")
                target.mkdir(parents=True, exist_ok=True)
                generate(target)
                (target / ".complete").write_text("ok\n")
            report = ingest_path(engine, settings, target, kind=kind, name=f"demo-{kind}")
            dataset_ids[kind] = report.dataset_id
            if progress_console:
                progress_console.print(f"indexed demo-{kind}: {report.items} items, "
                                       f"{report.annotations} annotations, {report.problem_count}")
                for problem in report.problems:  # the demo samples carry a few on purpose: say what they are
                    progress_console.print(f"  problem (kept in the sample on purpose): {problem}", markup=False)
        with make_session_factory(engine)() as session:
            for line in register_and_predict(session, settings, dataset_ids):
                if progress_console:
                    progress_console.print(line)
    finally:
        engine.dispose()
    return settings
