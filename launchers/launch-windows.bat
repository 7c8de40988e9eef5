@echo off
rem Start the local transcriber: double-click this file. It finds Python >= 3.11 and runs launchers\start.py, which
rem sets up .venv on the first run (needs the internet once) and then opens the page in your browser.
rem Stop it with Ctrl-C or by closing this window.
setlocal
cd /d "%~dp0.."
set "PYTHON="
for %%V in (3.13 3.12 3.11) do (
  if not defined PYTHON py -%%V -c "import sys" >nul 2>&1 && set "PYTHON=py -%%V"
)
if not defined PYTHON py -3 -c "import sys; sys.exit(sys.version_info < (3, 11))" >nul 2>&1 && set "PYTHON=py -3"
if not defined PYTHON python -c "import sys; sys.exit(sys.version_info < (3, 11))" >nul 2>&1 && set "PYTHON=python"
if not defined PYTHON (
  echo The transcriber needs Python 3.11 or newer, and none was found.
  echo Install it from https://www.python.org/downloads/windows/ and tick "Add python.exe to PATH",
  echo or from the Microsoft Store, then double-click this file again.
  pause
  exit /b 1
)
%PYTHON% launchers\start.py %*
if errorlevel 1 (
  pause
  exit /b 1
)
endlocal
