#!/usr/bin/env bash
# Start the local transcriber: double-click this file (choose "Run" or "Run in Terminal") or run it in a terminal.
# It finds Python >= 3.11 and hands over to launchers/start.py, which sets up .venv on the first run (needs the
# internet once) and then opens the page in your browser. Stop it with Ctrl-C or by closing the terminal window.
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." || exit 1

# Started from a file manager without a terminal: reopen in one, so progress is visible and Ctrl-C can stop it
# (QWEN3_ASR_IN_TERMINAL=1 turns this off).
if [ ! -t 0 ] && [ ! -t 1 ] && [ -z "${QWEN3_ASR_IN_TERMINAL:-}" ] && [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  export QWEN3_ASR_IN_TERMINAL=1 QWEN3_ASR_PAUSE_ON_ERROR=1
  self="$PWD/launchers/launch-linux.sh"
  for term in x-terminal-emulator gnome-terminal konsole xfce4-terminal xterm; do
    command -v "$term" >/dev/null 2>&1 || continue
    case "$term" in
      gnome-terminal) exec gnome-terminal -- bash "$self" ;;
      xfce4-terminal) exec xfce4-terminal -x bash "$self" ;;
      *) exec "$term" -e bash "$self" ;;
    esac
  done
fi

for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
    "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
    exec "$candidate" launchers/start.py "$@"
  fi
done

{
  echo "The transcriber needs Python 3.11 or newer, and none was found."
  if command -v python3 >/dev/null 2>&1; then echo "(python3 here is: $(python3 --version 2>&1))"; fi
  echo "Install it, then start this file again:"
  echo "  Debian 12+, Ubuntu 24.04+:  sudo apt install python3 python3-venv"
  echo "  Ubuntu 22.04:               sudo apt install python3.11 python3.11-venv"
  echo "  Fedora:                     sudo dnf install python3"
  echo "  Arch:                       sudo pacman -S python"
  echo "  or from https://www.python.org/downloads/"
} >&2
if [ "${QWEN3_ASR_PAUSE_ON_ERROR:-}" = 1 ]; then read -r -p "Press Enter to close this window. " _; fi
exit 1
