"""The docs a user reads stay true to the code."""

from __future__ import annotations

from server.settings import Settings

from .servers import ROOT


def test_readme_shows_the_two_commands_first() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme[readme.index("## Quick start") :]
    assert quick_start.index("make run") < quick_start.index("make test") < quick_start.index("grpcurl")


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name, _, _ in Settings().describe() if f"`{name}`" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"


def test_the_docs_the_readme_links_to_exist() -> None:
    for name in "ARCHITECTURE API DATABASE DEPLOYMENT OPERATIONS PERFORMANCE STREAMING TROUBLESHOOTING".split():
        assert (ROOT / "docs" / f"{name}.md").is_file(), f"docs/{name}.md is missing"
        assert f"](docs/{name}.md)" in (ROOT / "README.md").read_text(), f"README does not link docs/{name}.md"
