# Sourced by ./run-tests, ./run-example and .ci/run: find uv, or install the pinned one, and sync the lock.
# `python3 -m uv` works right after a pip install, before any shell rehash.
if command -v uv >/dev/null 2>&1; then
    UV=(uv)
else
    python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==0.13.9"
    UV=(python3 -m uv)
fi
"${UV[@]}" sync --locked --quiet
# Airflow subprocesses in the tests import ~2,000 modules each; without bytecode on disk every one of them
# compiles the sources again (seconds of CPU per `airflow` command on a 2-core machine).
unset PYTHONDONTWRITEBYTECODE
