@echo off
rem Manage the Windows service of this project; run in a console opened "as Administrator".
rem   service.bat install [-- server options]   install (starts with Windows) - see windows_service.py
rem   service.bat start ^| stop ^| restart ^| remove ^| status
setlocal
cd /d "%~dp0"
if "%~1"=="" (
    echo Usage: service.bat install^|start^|stop^|restart^|remove^|status
    exit /b 2
)
if exist ".venv\Scripts\python.exe" goto run
rem First use: make .venv, .env, the database and static files, as start_server.bat does.
py -3 bootstrap.py
if errorlevel 9009 python bootstrap.py
if errorlevel 1 (
    echo ERROR: preparing the project failed; see the messages above.
    exit /b 1
)
:run
".venv\Scripts\python.exe" windows_service.py %*
exit /b %errorlevel%
