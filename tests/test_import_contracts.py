"""The contract that keeps `app.py` on the public API: which imports of a script it counts as breaking it."""

from __future__ import annotations

import ast

from testbed.import_contracts import _first_party_imports

SCRIPT = """
import os
import asr
from asr import WRITERS, format_clock
from asr import jobs
from asr.hub import LARGE_MODEL
import asr.tempfiles
from streamlit.runtime import Runtime
from . import sibling
"""


def test_only_imports_of_modules_inside_the_package_break_it():
    found = _first_party_imports(ast.parse(SCRIPT), {"asr"})
    assert [name for _, name in found if name != "asr"] == ["asr.jobs", "asr.hub", "asr.tempfiles"]
    assert [line for line, name in found if name != "asr"] == [5, 6, 7]
    assert [name for _, name in found].count("asr") == 3  # `import asr` and the two public names
