"""The documentation travels with the code: these tests fail when docs/ drifts from it.

docs/api.md must list every setting (with its default), every route of the app (and no route that does not
exist), every `medview` command and flag; docs/model-card.md every card field and a valid card in each example;
docs/viewer.md every URL parameter the viewer writes; docs/datasets.md every dataset kind with its facets. No
page may point at files outside the repository, and every relative link (and its #anchor) must resolve.
"""

from __future__ import annotations

import argparse
import re
import typing
from pathlib import Path

import pytest

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
API_MD = DOCS / "api.md"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def section(text: str, title: str) -> str:
    """The body of the `## title` section (up to the next level-2 heading)."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no '## {title}' section"
    return match.group(1)


def table_rows(text: str, first_cell: str) -> list[str]:
    """Markdown table rows whose first cell starts with `first_cell`."""
    return [line for line in text.splitlines() if line.startswith(f"| {first_cell}")]


# -- configuration ------------------------------------------------------------------------------

def _default_text(value: object) -> str | None:
    if isinstance(value, bool) or value in ("", None):
        return None
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_configuration_table_lists_every_setting_with_its_default(name):
    table = section(read(API_MD), "Configuration")
    variable = f"MEDVIEW_{name.upper()}"
    rows = table_rows(table, f"`{variable}` |")
    assert len(rows) == 1, f"docs/api.md's configuration table has no row for {variable}"
    default = _default_text(Settings.model_fields[name].default)
    if default is not None:
        assert default in rows[0].split("|")[2], f"{variable}: the documented default is not {default!r}"


# -- routes -------------------------------------------------------------------------------------

def app_routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the app, API and pages ("MOUNT" for mounted apps such as /static)."""
    from app.main import create_app

    app = create_app(Settings(_env_file=None, database_url="sqlite://"))  # no connection until startup
    try:  # FastAPI ≥ 0.16x keeps included routers as one entry each; this walks into them
        from fastapi.routing import iter_route_contexts

        routes = list(iter_route_contexts(app.routes))
    except ImportError:
        routes = list(app.routes)
    out = []
    for route in routes:
        methods = getattr(route, "methods", None)
        if methods is None:  # the static files' versioned mount is documented as /static/v-<hash>
            out.append(("MOUNT", re.sub(r"/v-[0-9a-f]{12}$", "/v-<hash>", route.path)))
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # `{model_id:int}` is documented as `{model_id}`
        out += [(m, path) for m in sorted(methods or ()) if m != "HEAD"]
    return out


ROUTES = app_routes()


def test_the_app_has_the_routes_this_test_expects():
    assert ("GET", "/api/health") in ROUTES and ("GET", "/items/{item_id}") in ROUTES and ("GET", "/docs") in ROUTES


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_is_documented(method, path):
    text = read(API_MD)
    if method == "MOUNT":
        assert f"GET {path}/" in text, f"docs/api.md does not describe the files under {path}/"
        return
    # a heading or a table row of its own, not a mention in passing
    own = re.escape(f"`{method} {path}`")
    assert re.search(rf"^(#{{2,6}} {own}$|\| {own} \|)", text, re.M), f"docs/api.md has no entry for `{method} {path}`"


def test_every_documented_route_exists():
    routes = set(ROUTES)
    mounts = [p for m, p in ROUTES if m == "MOUNT"]
    documented = set(re.findall(rf"`({'|'.join(METHODS)}) (/[^`?\s]*)`", read(API_MD)))
    assert documented
    for method, path in sorted(documented):
        path = path.rstrip("…")
        if any(path.startswith(f"{m}/") for m in mounts):
            continue
        assert (method, path) in routes, f"docs/api.md documents `{method} {path}`, which the app does not have"


# -- command line -------------------------------------------------------------------------------

def cli_commands() -> dict[str, set[str]]:
    """`medview SUB[ SUB2]` → its option flags, from the real parser."""
    from app.cli import build_parser

    out: dict[str, set[str]] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:  # argparse keeps its sub-parsers here only
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    flags = {o for a in sub._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
                    out[f"{prefix} {name}"] = flags
                    walk(sub, f"{prefix} {name}")
            elif not action.option_strings and action.choices and prefix != "medview" and action.dest != "role":
                for choice in action.choices:  # positional verbs: `medview db upgrade|downgrade` (not a ROLE value)
                    out[f"{prefix} {choice}"] = set()

    walk(build_parser(), "medview")
    return out


COMMANDS = cli_commands()


def test_the_cli_has_the_commands_this_test_expects():
    assert {"medview ingest", "medview models add", "medview db upgrade"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_cli_command_and_flag_is_documented(command):
    text = section(read(API_MD), "Command line")
    assert f"`{command}" in text, f"docs/api.md's command line section lacks {command}"
    rows = "\n".join(table_rows(text, f"`{command}"))
    for flag in sorted(COMMANDS[command]):
        assert flag in rows, f"docs/api.md: {command} lacks its flag {flag}"


# -- links --------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", read(path), re.M)}


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_no_link_leaves_the_repository(page):
    text = read(page)
    assert "../shared" not in text and "shared/design" not in text, f"{page.name} points outside the repository"
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        resolved = (page.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{page.name}: {target} lies outside the repository"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page):
    for target in LINK.findall(read(page)):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file_part, _, anchor = target.partition("#")
        path = (page.parent / file_part).resolve() if file_part else page
        assert path.exists(), f"{page.name}: link {target} points at a missing file"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{page.name}: link {target}: no heading #{anchor} in {path.name}"


# -- model card, viewer, datasets -------------------------------------------------------------------

def test_model_card_doc_names_every_field_and_value():
    from app.inference.card import InputSpec, ModelCard, OutputSpec

    text = read(DOCS / "model-card.md")
    for model in (ModelCard, InputSpec, OutputSpec):
        for field in model.model_fields:
            assert f"| `{field}` |" in text, f"docs/model-card.md lacks the field {model.__name__}.{field}"
    for field, model in (("task", ModelCard), ("layout", InputSpec), ("kind", OutputSpec)):
        for value in typing.get_args(model.model_fields[field].annotation):
            assert f"`{value}`" in text, f"docs/model-card.md lacks {field} value {value!r}"


def test_model_card_examples_are_valid_cards():
    from app.inference.card import card_from_text

    blocks = re.findall(r"```yaml\n(.*?)```", read(DOCS / "model-card.md"), re.S)
    tasks = {card_from_text(block).task for block in blocks}
    assert tasks == {"classify", "segment2d", "segment3d", "detect2d"}


def test_viewer_doc_lists_every_url_parameter():
    from app.web import item_page

    text = read(DOCS / "viewer.md")
    written = set(re.findall(r'p\.set\("(\w+)"', read(ROOT / "static/js/viewer/url.js")))
    assert {"window", "slice", "zoom", "diff"} <= written
    for name in written:
        assert f"| `{name}` |" in text, f"docs/viewer.md lacks the URL parameter {name}"
    for value in (*item_page.LAYOUTS, *item_page.LAYERS, *item_page.PRESET_ORDER):
        assert f"`{value}`" in text, f"docs/viewer.md lacks {value!r}"


def test_datasets_doc_covers_every_kind_and_its_fields():
    from app.datasets.registry import ADAPTER_PATHS, get_adapter

    text = read(DOCS / "datasets.md")
    names = section(read(API_MD), "Names")
    for kind in ADAPTER_PATHS:
        assert f"`{kind}`" in names, f"docs/api.md's names lack the dataset kind {kind}"
        body = section(text, next(t for t in re.findall(r"^## (.+)$", text, re.M) if t.startswith(f"{kind} ")))
        adapter = get_adapter(kind)
        for field in (*adapter.facet_fields, *adapter.filter_fields):
            assert f"`{field}`" in body, f"docs/datasets.md's {kind} section lacks the field {field}"
