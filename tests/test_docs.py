"""The docs a user reads stay true to the code."""

from __future__ import annotations

import re

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


def test_the_activity_action_table_names_exactly_the_actions_the_server_records() -> None:
    """docs/API.md's action table is the contract of the activity log: no action missing, none invented."""
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", (ROOT / "docs" / "API.md").read_text(), re.M))
    domain = "\n".join(p.read_text() for p in (ROOT / "server" / "domain").glob("*.py"))
    recorded = set(re.findall(r"record_activity\(\s*\w+,\s*[^,]+?,\s*\"([a-z_]+\.[a-z_]+)\"", domain))
    literals = set(re.findall(r"\"([a-z_]+\.[a-z_]+)\"", domain))
    assert recorded, "no record_activity call found: the pattern above is out of date"
    assert recorded <= documented, f"recorded but not in docs/API.md: {sorted(recorded - documented)}"
    assert documented <= literals, f"documented but never recorded: {sorted(documented - literals)}"
