"""The house rules of the layout (DESIGN.md): data flows one way and `forecaster` never imports
`jobs`. Read from the source, so a new import that breaks a rule fails here, named."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """(module, at top level) for every import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in top))
    return found


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_forecaster_never_imports_jobs_except_the_cli_loading_serve_lazily():
    offenders = [
        f"{p.relative_to(ROOT)} imports {m}"
        for p in modules("forecaster")
        for m, top in imports_of(p)
        if (m == "jobs" or m.startswith("jobs.")) and (top or p.name != "cli.py")
    ]
    assert offenders == []


def test_models_and_the_pure_stages_import_no_database_source_or_http_directly():
    pure = [*modules("forecaster/models"), ROOT / "forecaster/detect.py", ROOT / "forecaster/calendar.py",
            ROOT / "forecaster/vocab.py", ROOT / "forecaster/alerts/policy.py", ROOT / "forecaster/alerts/render.py"]
    banned = ("forecaster.store", "forecaster.ingest", "forecaster.pipeline", "forecaster.util.db", "sqlalchemy", "requests")
    offenders = [f"{p.relative_to(ROOT)} imports {m}" for p in pure for m, _ in imports_of(p) if m.startswith(banned)]
    assert offenders == []


def test_the_vocabulary_depends_on_nothing_of_the_project():
    assert [m for m, _ in imports_of(ROOT / "forecaster/vocab.py") if m.startswith(("forecaster", "jobs"))] == []


def test_the_config_schema_sits_below_every_stage():
    """config.py holds the defaults every stage reads; it imports only the vocabulary and helpers."""
    found = [m for m, _ in imports_of(ROOT / "forecaster/config.py") if m.startswith("forecaster")]
    assert [m for m in found if not m.startswith(("forecaster.vocab", "forecaster.util"))] == []
