#!/usr/bin/env bash
# The one command that sets everything up and runs the service on its embedded default:
# SQLite in ./var, no other service. Extra arguments go to `crm serve` (--host, --port,
# --data-dir); settings also come from CRM_* environment variables (see README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv || {
        if [ "$EUID" -eq 0 ] && command -v apt-get >/dev/null; then
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            rm -rf .venv && python3 -m venv .venv
        else
            echo "serve.sh: python3 -m venv failed; install python3-venv" >&2
            exit 1
        fi
    }
fi
.venv/bin/pip install -q --disable-pip-version-check -e .
exec .venv/bin/crm serve "$@"
