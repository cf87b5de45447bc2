@echo off
rem Upgrade the running site to the code now in this folder (docs\upgrades.md): requirements
rem when requirements.txt changed, a database backup, migrations, static files, then a reload
rem (or a drained restart of the service). When the site runs as a service, run it in a
rem console opened as Administrator.
rem   upgrade.bat                 prepare and switch
rem   upgrade.bat --prepare-only  prepare only; restart the server yourself
rem Exit codes: 0 upgraded, 1 failed and undone, 2 bad input, 3 prepared but not switched,
rem 4 failed and not undone. Scripts set CI=1: no pause on an error.
setlocal
title {{ cookiecutter.project_slug }} - upgrade
rem No parenthesised blocks: a ")" in the path, as in "Site (old)", would end one.
rem Checked by looking for upgrade.py: cd does not reliably reset errorlevel on success.
cd /d "%~dp0"
if not exist "upgrade.py" goto :no_folder
if not exist ".venv\Scripts\python.exe" goto :no_venv
".venv\Scripts\python.exe" upgrade.py %*
set "CODE=%errorlevel%"
if "%CODE%"=="0" exit /b 0
if "%CODE%"=="3" exit /b 3
goto :fail

:no_folder
rem Paths are quoted in messages: a folder named like "R&D" must not run "D" as a command.
echo ERROR: cannot run in the folder of this script: "%~dp0"
echo        Its upgrade.py is missing, or it is a network folder (\\server\share), which
echo        cmd.exe cannot use as the current folder: copy the project to a local folder.
set "CODE=2"
goto :fail

:no_venv
echo ERROR: "%CD%\.venv" does not exist yet. Run start_server.bat once first.
set "CODE=2"
goto :fail

:fail
rem Keep a double-clicked window open so the message can be read.
if not defined CI pause
exit /b %CODE%
