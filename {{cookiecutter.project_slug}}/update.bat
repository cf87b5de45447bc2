@echo off
rem Update this project to the newest version of its template (see docs\updating.md),
rem keeping your changes; conflicts are listed and the exit code is 1. Then run upgrade.bat.
rem   update.bat                      from the template recorded in .cruft.json
rem   update.bat --template URL-OR-FOLDER --checkout REF
setlocal
rem Checked by looking for update.py: cd does not reliably reset errorlevel on success.
cd /d "%~dp0"
if not exist "update.py" (
    echo ERROR: cannot run in the folder of this script: "%~dp0"
    exit /b 1
)
if not exist ".venv\Scripts\python.exe" (
    echo ERROR: %CD%\.venv does not exist yet. Run start_server.bat once first.
    exit /b 1
)
rem One line, parsed before it runs: the update may replace this file, and cmd.exe reads a
rem batch file as it goes.
".venv\Scripts\python.exe" update.py %* && exit /b 0 || exit /b 1
