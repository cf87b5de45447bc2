@echo off
rem Manage the Windows service of this project; run in a console opened "as Administrator".
rem   service.bat install [-- server options]   install (starts with Windows)
rem   service.bat start ^| stop ^| restart ^| reload ^| remove ^| status
rem   service.bat run [server options]          run in this console exactly as the service does
rem Short for: .venv\Scripts\python.exe tornado_server.py service ...
setlocal
cd /d "%~dp0"
if "%~1"=="" (
    echo Usage: service.bat install^|start^|stop^|restart^|reload^|remove^|status^|run
    exit /b 2
)
rem The service runs with the project's .venv, which start_server.bat creates and keeps
rem up to date (requirements, migrations, static files).
if not exist ".venv\Scripts\python.exe" goto :no_venv
".venv\Scripts\python.exe" tornado_server.py service %*
exit /b %errorlevel%

:no_venv
echo ERROR: %CD%\.venv does not exist yet. Run start_server.bat once first (it prepares
echo        .venv, .env, the database and static files), stop it with Ctrl+C, then run
echo        service.bat again.
exit /b 1
