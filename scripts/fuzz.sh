#!/usr/bin/env bash
# A long fuzzing run of the HTTP API, for people (CI runs the same test with 15 examples).
#
#   scripts/fuzz.sh                 # 500 generated requests per operation (about 5 min, 2 cores)
#   scripts/fuzz.sh 2000            # more
#   scripts/fuzz.sh 500 -k cells    # arguments after the number go to pytest (here: the
#                                   # operations whose label holds "cells")
#
# What it does: tests/api/test_fuzz.py::test_no_server_error with TWIN_FUZZ_EXAMPLES=N.
# Schemathesis reads the API's own OpenAPI schema and sends, for every operation, schema-valid
# and schema-breaking requests (its examples, coverage and fuzzing phases) to the app in
# process, with every check schemathesis has (--checks all): no 5xx, every status, media type,
# header and body as documented, schema-valid data accepted (or a 400 on its meaning),
# schema-breaking data refused, undeclared methods 405 with the right Allow, auth not ignored.
# A failure prints a curl command that replays the request.
# The twin it fuzzes is a tiny demo city built for the run in a database of its own (dropped
# afterwards); `POST /api/simulations/flood|traffic` are left out (each would queue a run).
# Runs are derandomised: the same N sends the same requests; a larger N explores further.
#
# Needs what `make test` needs: `make setup` done, and the private PostGIS cluster (started if
# it is not running) or TWIN_DATABASE_URL pointing at a PostGIS server.
#
# Against a running server instead (it writes tasks and acknowledges alerts there, so point it
# at a demo, never at a twin people use):
#   .venv/bin/st run http://127.0.0.1:8000/openapi.json -n 500 --checks all \
#       --exclude-path-regex '^/api/simulations/(flood|traffic)$'
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-500}
[ $# -gt 0 ] && shift
case $N in
    '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [EXAMPLES] [PYTEST ARGS...]" >&2; exit 2 ;;
esac
[ -x .venv/bin/pytest ] || { echo "no .venv: run make setup first" >&2; exit 1; }

echo "fuzzing every operation with $N examples each"
TWIN_FUZZ_EXAMPLES=$N exec .venv/bin/pytest tests/api/test_fuzz.py::test_no_server_error \
    -p no:cacheprovider -q "$@"
