"""``python -m testbed.scripted_streamlit run app.py ...``: `python -m streamlit`, with the scripted engine installed.

Used only by `testbed.screenshots`, which starts it as its own process in place of the launcher's
``python -m streamlit``. Streamlit runs the page's script in the process that runs its command line, so the
loaders that `testbed.scripted_engine.install` patches are the ones app.py calls; app.py itself is unchanged.
This is the one module of `testbed` that imports streamlit, and only its command line: pyproject.toml's
contract names it as the exception.
"""

from __future__ import annotations

from streamlit.web.cli import main as streamlit_main

from testbed import scripted_engine

if __name__ == "__main__":
    scripted_engine.install()
    streamlit_main(prog_name="streamlit")  # as `python -m streamlit` calls it
