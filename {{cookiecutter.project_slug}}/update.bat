@echo off
rem Update this project to the newest version of its template (see docs\updating.md),
rem keeping your changes; conflicts are listed and the exit code is 1. Then run upgrade.bat.
rem   update.bat                      from the template recorded in .cruft.json
rem   update.bat --template URL-OR-FOLDER --checkout REF
setlocal
title {{ cookiecutter.project_slug }} - update
rem No parenthesised blocks: a ")" in the path, as in "Site (old)", would end one.
rem Checked by looking for update.py: cd does not reliably reset errorlevel on success.
cd /d "%~dp0"
if not exist "update.py" goto :no_folder
if not exist ".venv\Scripts\python.exe" goto :no_venv
rem One line, parsed before it runs: the update may replace this file, and cmd.exe reads a
rem batch file as it goes.
".venv\Scripts\python.exe" update.py %* && exit /b 0 || exit /b 1

:no_folder
echo ERROR: cannot run in the folder of this script: "%~dp0"
goto :fail

:no_venv
echo ERROR: "%CD%\.venv" does not exist yet. Run start_server.bat once first.
goto :fail

:fail
rem Keep a double-clicked window open so the message can be read.
if not defined CI pause
exit /b 1
