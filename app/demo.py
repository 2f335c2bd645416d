"""`medview demo`: generate sample datasets in their real layouts under the data dir and index them."""

from __future__ import annotations

from rich.console import Console

from app.config import Settings
from app.datasets.ingest import ingest_path
from app.db.session import make_engine

DEMO_DIR = "demo"


def build_demo(settings: Settings, progress_console: Console | None = None) -> Settings:
    """Create (once) and index the demo datasets; returns settings whose data roots include them."""
    from app.datasets.deeplesion.synth import generate_deeplesion

    demo_root = (settings.data_dir / DEMO_DIR).resolve()
    roots = [str(r) for r in settings.allowed_roots]
    if not any(demo_root.is_relative_to(r) for r in settings.allowed_roots):
        roots.append(str(demo_root))
    settings = settings.model_copy(update={"data_roots": ":".join(roots)})
    samples = {"deeplesion": lambda d: generate_deeplesion(d, patients=8, seed=7)}
    engine = make_engine(settings.database_url)
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
            if progress_console:
                progress_console.print(f"indexed demo-{kind}: {report.items} items, "
                                       f"{report.annotations} annotations, {len(report.problems)} problems")
    finally:
        engine.dispose()
    return settings
