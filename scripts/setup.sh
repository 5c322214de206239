#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian/Ubuntu machine (or an existing one):
#   1. a virtualenv in .venv with the package installed editable with its dev extras;
#   2. PostgreSQL server binaries and PostGIS, from the OS packages where missing;
#   3. the web map's front-end packages (MapLibre GL JS, the pmtiles protocol of the static map)
#      from npm into web/node_modules;
#   4. with --browser (make test): Chromium from the OS packages, for the browser tests, and
#      redis-server, which the tile-cache tests start on a port of their own.
# Safe to run twice: every step checks before it acts. Never prompts (CI has no terminal).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
STAMP_DIR=.venv/.twin-stamps

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

# --- 1. Python virtualenv ------------------------------------------------------------
command -v "$PYTHON" >/dev/null || die "python3 not found: install it (apt-get install python3 python3-venv)"
"$PYTHON" - <<'PY' || die "Python >= 3.11 is required (found $("$PYTHON" --version 2>&1))"
import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
if [ ! -x .venv/bin/python ]; then
    say "creating virtualenv .venv"
    "$PYTHON" -m venv .venv || die "could not create a virtualenv: install python3-venv (apt-get install python3-venv)"
fi
mkdir -p "$STAMP_DIR"
# Reinstall only when pyproject.toml changed since the last successful install.
WANT=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$STAMP_DIR/pip" 2>/dev/null)" != "$WANT" ] || ! .venv/bin/python -c 'import twin' 2>/dev/null; then
    say "installing the package and its dev extras into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2> >(grep -v "is ignored: it is neither a file" >&2)
    # The machine-wide pip config may name find-links folders that do not exist; hide that noise.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2> >(grep -v 'is ignored: it is neither a file' >&2)
    echo "$WANT" > "$STAMP_DIR/pip"
else
    say "virtualenv up to date"
fi

# --- 2. PostgreSQL + PostGIS -----------------------------------------------------------
# Server majors present: /usr/lib/postgresql/<major>/bin/postgres (Debian layout).
server_majors() { ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sed -E 's#.*/postgresql/([0-9]+)/bin/postgres#\1#' | sort -n; }
has_postgis() { [ -f "/usr/share/postgresql/$1/extension/postgis.control" ]; }

need_install=""
majors=$(server_majors || true)
if [ -n "$majors" ]; then
    for m in $majors; do has_postgis "$m" && { say "PostGIS found for PostgreSQL $m"; need_install=""; break; }; need_install="postgresql-$m-postgis-3"; done
else
    need_install="auto"
fi

if [ -n "$need_install" ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        if [ "$need_install" = auto ]; then
            die "no PostgreSQL server found. Install PostgreSQL >= 13 with PostGIS 3, e.g. 'sudo apt-get install postgresql postgresql-<major>-postgis-3', or set TWIN_DATABASE_URL to an existing PostGIS database."
        fi
        die "PostGIS is missing. Install it with: sudo apt-get install -y $need_install   (or set TWIN_DATABASE_URL to an existing PostGIS database)"
    fi
    export DEBIAN_FRONTEND=noninteractive
    say "apt-get update"
    apt-get update -qq; APT_UPDATED=1
    if [ "$need_install" = auto ]; then
        # Newest packaged major that has a PostGIS 3 package.
        major=$(apt-cache search --names-only '^postgresql-[0-9]+-postgis-3$' | sed -E 's/^postgresql-([0-9]+)-.*/\1/' | sort -n | tail -1)
        [ -n "$major" ] || die "no postgresql-<major>-postgis-3 package in the configured apt sources"
        need_install="postgresql-$major postgresql-$major-postgis-3"
    fi
    say "installing $need_install"
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need_install postgresql-contrib >/dev/null \
        || apt-get install -y -qq --no-install-recommends $need_install >/dev/null \
        || die "apt-get install $need_install failed"
fi
# --- 3. Front-end packages ----------------------------------------------------------------
apt_install() {  # apt_install PKG...: install OS packages when we may, else explain and stop
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        die "missing: $*. Install with: sudo apt-get install -y $*"
    fi
    export DEBIAN_FRONTEND=noninteractive
    [ -n "${APT_UPDATED:-}" ] || { say "apt-get update"; apt-get update -qq; APT_UPDATED=1; }
    say "installing $*"
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null || die "apt-get install $* failed"
}
command -v npm >/dev/null || apt_install nodejs npm
command -v mosquitto >/dev/null || apt_install mosquitto
# GDAL's ogrinfo/ogr2ogr: the export tests' and benchmark's independent reader and writer.
command -v ogr2ogr >/dev/null || apt_install gdal-bin
WANT=$(sha256sum web/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$STAMP_DIR/npm" 2>/dev/null)" != "$WANT" ] || [ ! -f web/node_modules/maplibre-gl/dist/maplibre-gl.js ] \
        || [ ! -f web/node_modules/pmtiles/dist/pmtiles.js ]; then
    say "installing the web map's npm packages into web/node_modules"
    (cd web && npm ci --no-audit --no-fund --loglevel=error 2> >(grep -v 'Unknown user config' >&2)) \
        || die "npm ci in web/ failed (the npm registry must be reachable once)"
    echo "$WANT" > "$STAMP_DIR/npm"
else
    say "npm packages up to date"
fi

# --- 4. Chromium for the browser tests ----------------------------------------------------
if [ "${1:-}" = "--browser" ]; then
    # A CJK font too: the demo city's names are Chinese, and screenshots should show them.
    want=""
    [ -x /usr/bin/chromium ] || want="chromium"
    # Redis for the tile cache's second level: optional to run the twin, tested all the same.
    command -v redis-server >/dev/null || want="$want redis-server"
    fc-list 2>/dev/null | grep -qi 'wqy\|noto.*cjk' || want="$want fonts-wqy-microhei"
    # shellcheck disable=SC2086
    if [ -n "$want" ]; then apt_install $want; else say "Chromium and a CJK font found"; fi
fi
say "done: activate with 'source .venv/bin/activate' or use .venv/bin/twin"
