@echo off
rem Upgrade the running site to the code now in this folder (see README.md, "Upgrades"):
rem requirements when requirements.txt changed, migrations, static files, then a reload
rem (or a drained restart of the service). Run it in a console opened as Administrator
rem when the site runs as a service.
rem   upgrade.bat                 prepare and switch
rem   upgrade.bat --prepare-only  prepare only; restart the server yourself
setlocal
cd /d "%~dp0" || (echo ERROR: cannot change to the folder of this script & exit /b 1)
if not exist ".venv\Scripts\python.exe" (
    echo ERROR: %CD%\.venv does not exist yet. Run start_server.bat once first.
    exit /b 1
)
".venv\Scripts\python.exe" upgrade.py %*
exit /b %errorlevel%
