"""The private APIs the build relies on are the ones CONTRIBUTING.md lists,
at the versions it names: an upgrade fails here until someone has checked
each use again and updated the table."""

import importlib.metadata
import re

from tools.pages import ROOT


def listed() -> list[tuple[str, str]]:
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text.split("## The build machinery", 1)[1]
    return re.findall(r"^\| ([a-z][\w-]*) \| ([\w.]+) \|", section, re.M)


def test_private_apis_are_used_at_the_versions_they_were_checked_on():
    rows = listed()
    assert len(rows) >= 5, rows
    changed = [f"{name} is {importlib.metadata.version(name)}, checked on "
               f"{version}" for name, version in rows
               if importlib.metadata.version(name) != version]
    assert not changed, ("check the uses listed in CONTRIBUTING.md again, "
                         "then update the table:\n" + "\n".join(changed))
