"""``python -m testbed.scripted_streamlit run app.py ...``: `python -m streamlit` with the scripted engine installed.

Used only by `testbed.screenshots`: Streamlit runs the page's script in this same process, so the loaders that
`testbed.scripted_engine.install` patches are the ones app.py calls; app.py itself is unchanged. Streamlit is
run as a program (`runpy`), as the launcher's command runs it, not imported as a library.
"""

from __future__ import annotations

import runpy
import sys

from testbed import scripted_engine

if __name__ == "__main__":
    scripted_engine.install()
    sys.argv = ["streamlit", *sys.argv[1:]]
    runpy.run_module("streamlit", run_name="__main__", alter_sys=True)
