@echo off
rem Update this project to the newest version of its template (see docs\updating.md),
rem keeping your changes; conflicts are listed and the exit code is 1. Then run upgrade.bat.
rem   update.bat                      from the template recorded in .cruft.json
rem   update.bat --template URL-OR-FOLDER --checkout REF
setlocal
cd /d "%~dp0" || (echo ERROR: cannot change to the folder of this script & exit /b 1)
if not exist ".venv\Scripts\python.exe" (
    echo ERROR: %CD%\.venv does not exist yet. Run start_server.bat once first.
    exit /b 1
)
rem One line: the update may replace this file, and cmd.exe reads a batch file as it runs.
".venv\Scripts\python.exe" update.py %* & exit /b
