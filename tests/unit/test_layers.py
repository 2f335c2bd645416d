"""The package layering of app/ (docs/architecture.md): which package may import which, function-local imports
included, and no cycles. A new arrow that breaks it fails here, naming the importing module."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"

# Package → the app packages it may import (top-level modules count as packages of their own name).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "console": set(),
    "lru": set(),
    "heap": set(),
    "config": set(),
    "imaging": set(),
    "metrics": set(),
    "db": {"errors", "config"},
    "audit": {"db", "errors", "config"},
    "accounts": {"audit", "db", "errors", "config"},
    "datasets": {"db", "imaging", "metrics", "errors", "config", "lru"},
    "pixels": {"datasets", "db", "errors", "config", "lru", "imaging"},
    "render": {"pixels", "datasets", "imaging", "errors", "lru", "config"},
    "catalog": {"datasets", "db", "errors", "config", "imaging"},
    "inference": {"audit", "pixels", "catalog", "datasets", "db", "imaging", "metrics", "errors", "config", "lru"},
    "inference_device": {"inference"},
    "review": {"db", "datasets", "audit", "accounts", "errors", "config"},
    "api": {"review", "accounts", "audit", "render", "pixels", "catalog", "inference", "inference_device", "datasets",
            "db", "imaging", "errors", "config"},
    "web": {"review", "accounts", "audit", "api", "render", "pixels", "catalog", "inference", "datasets", "db",
            "imaging", "errors", "config"},
    "demo_models": {"inference", "db", "config", "errors"},
    "demo": {"datasets", "db", "config", "demo_models", "errors", "inference"},
    "demo_accounts": {"accounts", "config", "db"},
    "cli": {"console", "accounts", "config", "datasets", "db", "demo", "demo_accounts", "errors", "inference",
            "catalog"},
    "main": {"review", "accounts", "api", "web", "catalog", "config", "datasets", "db", "errors", "inference", "pixels",
             "render", "heap"},
}
# app.export (issue 12): reads through the catalog, pixels and inference's job machinery; used by the routes,
# pages, CLI and main.
ALLOWED["export"] = {"audit", "pixels", "catalog", "inference", "datasets", "db", "imaging", "errors", "config"}
for _user in ("api", "web", "cli", "main"):
    ALLOWED[_user] = ALLOWED[_user] | {"export"}
# app.ingest_jobs (issue 13): ingest as a job — the ingest driver run by inference's job machinery.
ALLOWED["ingest_jobs"] = {"audit", "pixels", "inference", "datasets", "db", "errors", "config"}
# app.embeddings (issue 15): similar-item search over inference's vector files; used by the API.
ALLOWED["embeddings"] = {"inference", "catalog", "db", "errors", "config"}
ALLOWED["api"] = ALLOWED["api"] | {"embeddings"}
# few-shot classifiers (issue 15, app.embeddings.fewshot): their page reads what a model was trained on; the CLI
# trains them and prints the label curve. Training registers a model (audit) and names the dataset kind's classes.
ALLOWED["embeddings"] = ALLOWED["embeddings"] | {"audit", "datasets"}
# Web pages also show the patient page's lesion tracks by embedding (app.embeddings.patient_tracks) and the
# embedding map, which colours points by the kind's facet fields (datasets' adapters).
for _user in ("web", "cli"):
    ALLOWED[_user] = ALLOWED[_user] | {"embeddings"}
for _user in ("api", "web", "cli", "main"):
    ALLOWED[_user] = ALLOWED[_user] | {"ingest_jobs"}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "app"


def imports() -> list[tuple[str, str]]:
    """(importing module, imported app module) for every import statement anywhere in a module."""
    out = []
    for path in APP.rglob("*.py"):
        module = ".".join(path.relative_to(APP.parent).with_suffix("").parts).removesuffix(".__init__")
        package_parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package_parts[:len(package_parts) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            out += [(module, name) for name in names if name == "app" or name.startswith("app.")]
    return out


def test_every_package_is_declared():
    packages = {package_of(m) for m, _ in imports()} - {"app", "__init__"}
    assert packages <= set(ALLOWED), f"declare the layer of {sorted(packages - set(ALLOWED))} in ALLOWED"


def test_imports_follow_the_layers():
    wrong = sorted(f"{m} imports {t}" for m, t in imports()
                   if package_of(m) in ALLOWED and package_of(t) != package_of(m)
                   and package_of(t) not in ALLOWED[package_of(m)] and t != "app")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_package_cycles():
    edges: dict[str, set[str]] = {}
    for m, t in imports():
        if package_of(m) != package_of(t):
            edges.setdefault(package_of(m), set()).add(package_of(t))

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            for nxt in edges.get(stack.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    cycles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if a < b and reaches(b, a))
    assert not cycles, f"package import cycles: {cycles}"
