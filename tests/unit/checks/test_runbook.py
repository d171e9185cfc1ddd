"""Every check has a runbook section at the anchor its default runbook URL points to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streamproc.checks import CHECK_NAMES, LifecyclePolicy

RUNBOOK = Path(__file__).resolve().parents[3] / "docs" / "RUNBOOK.md"


def _github_anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_runbook_section_for_every_check(check: str) -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    url = LifecyclePolicy().runbook_url(check)
    path, anchor = url.split("#")
    assert path == "docs/RUNBOOK.md"
    assert f'<a id="{anchor}"></a>' in text
    headings = {_github_anchor(h) for h in re.findall(r"^## (.+)$", text, flags=re.M)}
    assert anchor in headings  # renderers without explicit ids get it right too
    section = text.split(f'<a id="{anchor}"></a>', 1)[1].split("<a id=", 1)[0]
    for part in ("**Means**", "**Likely causes**", "**First actions**"):
        assert part in section, f"{check}: missing {part}"
