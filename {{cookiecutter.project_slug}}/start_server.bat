@echo off
rem Start {{ cookiecutter.project_name }}: the first run prepares .venv, the database and
rem static files (see bootstrap.py), later runs start in seconds.
rem   start_server.bat                  serve on the configured port ({{ cookiecutter.port }})
rem   start_server.bat 8080             serve on port 8080
rem   start_server.bat 8080 --workers 2   any further tornado_server.py options
rem Set BOOTSTRAP_PYTHON=C:\path\to\python.exe to choose the Python that creates .venv.
setlocal EnableExtensions
title {{ cookiecutter.project_slug }} - server
rem Checked by looking for bootstrap.py: cd does not reliably reset errorlevel on success.
cd /d "%~dp0"
if not exist "bootstrap.py" goto :no_folder

rem Find Python 3.10+: BOOTSTRAP_PYTHON if set, else the py launcher, then python on PATH.
rem The launcher's plain "py -3" picks the newest Python, which may be newer than the
rem versions every requirement has wheels for: the tested versions come first.
rem No parenthesised blocks here: a ")" in the path, as in "Program Files (x86)", would end one.
set "PYTHON="
rem Quotes around the value are dropped; the path is quoted again where it is used.
if defined BOOTSTRAP_PYTHON set "BOOTSTRAP_PYTHON=%BOOTSTRAP_PYTHON:"=%"
if defined BOOTSTRAP_PYTHON call :try_python "%BOOTSTRAP_PYTHON%"
if not defined BOOTSTRAP_PYTHON call :try_python py -3.14
if not defined PYTHON if not defined BOOTSTRAP_PYTHON call :try_python py -3.13
if not defined PYTHON if not defined BOOTSTRAP_PYTHON call :try_python py -3.12
if not defined PYTHON if not defined BOOTSTRAP_PYTHON call :try_python py -3.11
if not defined PYTHON if not defined BOOTSTRAP_PYTHON call :try_python py -3.10
if not defined PYTHON if not defined BOOTSTRAP_PYTHON call :try_python py -3
if not defined PYTHON if not defined BOOTSTRAP_PYTHON call :try_python python
if not defined PYTHON goto :no_python
echo ==^> Using %PYTHON%

rem "call" so that a Python wrapper that is itself a batch file (pyenv-win) returns here.
call %PYTHON% bootstrap.py
if errorlevel 1 goto :setup_failed

rem A first argument that is not an option is the port.
set "ARGS=%*"
set "FIRST=%~1"
if defined FIRST if not "%FIRST:~0,1%"=="-" set "ARGS=--port %*"
echo ==^> Starting the server
".venv\Scripts\python.exe" tornado_server.py %ARGS%
if errorlevel 1 goto :server_failed
exit /b 0

:try_python
rem <nul: a launcher that asks whether to install a runtime gets no answer instead of
rem waiting, unseen, behind >nul.
call %* -c "import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)" <nul >nul 2>&1
if not errorlevel 1 set "PYTHON=%*"
exit /b 0

:no_folder
rem Paths are quoted in messages: a folder named like "R&D" must not run "D" as a command.
echo ERROR: cannot run in the folder of this script: "%~dp0"
echo        Its bootstrap.py is missing, or it is a network folder (\\server\share), which
echo        cmd.exe cannot use as the current folder: copy the project to a local folder.
goto :fail

:no_python
if defined BOOTSTRAP_PYTHON goto :no_bootstrap_python
echo ERROR: Python 3.10 or newer was not found (tried: py -3.14 ... py -3.10, py -3, python).
goto :python_help
:no_bootstrap_python
echo ERROR: Python 3.10 or newer was not found at "%BOOTSTRAP_PYTHON%" (from BOOTSTRAP_PYTHON).
:python_help
echo        Install it from https://www.python.org/downloads/ and tick "Add python.exe to PATH",
echo        then run start_server.bat again.
goto :fail

:setup_failed
echo ERROR: setup did not finish; fix the problem above and run start_server.bat again.
goto :fail

:server_failed
echo ERROR: the server stopped with an error; see the messages above.
goto :fail

:fail
rem Keep a double-clicked window open so the message can be read.
if not defined CI pause
exit /b 1
