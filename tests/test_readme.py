"""The README's Python API example runs as written."""

from __future__ import annotations

import re

import pytest
from conftest import REPO


def _python_api_block() -> str:
    readme = REPO / "README.md"
    if not readme.is_file():
        pytest.fail("README.md is missing: it must have a '## Python API' section with a ```python example")
    text = readme.read_text(encoding="utf-8")
    section = re.search(r"^## Python API\s*$(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    if section is None:
        pytest.fail("README.md has no '## Python API' section: add one with a ```python example")
    block = re.search(r"```python\n(.*?)```", section.group(1), flags=re.DOTALL)
    if block is None:
        pytest.fail("README.md's 'Python API' section has no ```python code block")
    return block.group(1)


def test_python_api_example_runs(tmp_path, monkeypatch):
    code = _python_api_block()
    monkeypatch.chdir(tmp_path)  # the example writes files relative to the working directory
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)
    # The example saves and reloads a responses file; it must have landed in tmp_path, nowhere else.
    assert any(p.suffix == ".json" for p in tmp_path.iterdir())
