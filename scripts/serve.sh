#!/usr/bin/env bash
# The one command that sets everything up and runs the service on its embedded default:
# SQLite in ./var, no other service. Extra arguments go to `crm serve` (--host, --port,
# --data-dir); settings also come from CRM_* environment variables (see README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/venv.sh
source scripts/venv.sh
ensure_venv
.venv/bin/pip install -q --disable-pip-version-check -e .
exec .venv/bin/crm serve "$@"
