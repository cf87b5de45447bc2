@echo off
rem Manage the Windows service of this project; run in a console opened "as Administrator".
rem   service.bat install [-- server options]   install, run as NT SERVICE\<name> (starts with Windows)
rem   service.bat start ^| stop ^| restart ^| reload ^| remove ^| status   (each waits for the outcome)
rem   service.bat run [server options]          run in this console exactly as the service does
rem   --name NAME before the command: a second copy of the project, with a service of its own;
rem   --account LocalSystem ^| DOMAIN\user with install: another account (docs\windows-service.md)
rem Short for: .venv\Scripts\python.exe tornado_server.py service ...
setlocal
title {{ cookiecutter.project_slug }} - service
cd /d "%~dp0"
if not exist "tornado_server.py" goto :no_folder
if "%~1"=="" goto :usage
rem Everything but run and status changes the service, which needs an elevated console;
rem fltmc (the filter manager tool, in every Windows) fails without one.
if /i "%~1"=="run" goto :has_rights
if /i "%~1"=="status" goto :has_rights
if /i "%~1"=="--name" if /i "%~3"=="status" goto :has_rights
fltmc >nul 2>&1
if errorlevel 1 goto :not_admin
:has_rights
rem The service runs with the project's .venv, which start_server.bat creates and keeps
rem up to date (requirements, migrations, static files).
if not exist ".venv\Scripts\python.exe" goto :no_venv
".venv\Scripts\python.exe" tornado_server.py service %*
exit /b %errorlevel%

:usage
echo Usage: service.bat [--name NAME] install^|start^|stop^|restart^|reload^|update^|remove^|status^|run
echo        in a console opened as Administrator in this folder; see README.md, "Windows service".
rem Double-clicked: keep the window open so the text can be read.
if not defined CI pause
exit /b 2

:no_folder
echo ERROR: cannot run in the folder of this script: "%~dp0"
echo        It is a network folder (\\server\share), which cmd.exe cannot use as the current
echo        folder, or tornado_server.py is missing: copy the project to a local folder.
if not defined CI pause
exit /b 1

:not_admin
echo ERROR: "service.bat %~1" needs a console opened as Administrator (right-click Command
echo        Prompt, "Run as administrator"), then: cd /d "%~dp0"
if not defined CI pause
exit /b 5

:no_venv
echo ERROR: "%CD%\.venv" does not exist yet. Run start_server.bat once first (it prepares
echo        .venv, .env, the database and static files), stop it with Ctrl+C, then run
echo        service.bat again.
if not defined CI pause
exit /b 1
