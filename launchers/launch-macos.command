#!/usr/bin/env bash
# Start the local transcriber: double-click this file in Finder (it opens in Terminal). The first time, macOS may ask
# you to confirm: right-click the file, choose Open, then Open. It finds Python >= 3.11 and hands over to
# launchers/start.py, which sets up .venv on the first run (needs the internet once) and then opens the page in your
# browser. Stop it with Ctrl-C or by closing the Terminal window.
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." || exit 1

# python.org and Homebrew installs are tried by their full paths too, in case they are not on this shell's PATH.
for candidate in python3.13 python3.12 python3.11 \
  /Library/Frameworks/Python.framework/Versions/{3.13,3.12,3.11}/bin/python3 \
  /opt/homebrew/bin/python3 /usr/local/bin/python3 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
    "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
    exec "$candidate" launchers/start.py "$@"
  fi
done

{
  echo "The transcriber needs Python 3.11 or newer, and none was found."
  echo "(The python3 that comes with macOS is too old.) Install Python, then double-click this file again:"
  echo "  from https://www.python.org/downloads/macos/ (the macOS installer), or"
  echo "  with Homebrew (https://brew.sh):  brew install python@3.12"
} >&2
exit 1
