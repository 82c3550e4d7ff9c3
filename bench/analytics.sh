#!/usr/bin/env bash
# The analytics and rebuild benchmarks at scale (issue #5): ≥ 1,000,000 events on PostgreSQL.
#
#   bench/analytics.sh           # full size: ≈ 1,000,000 events (≈ 10–15 minutes on 2 cores)
#   bench/analytics.sh --quick   # 60,000 events, a smoke run (≈ 1 minute)
#   bench/analytics.sh --rebuild-only   # the book and the rebuild, no analytic reads
#
# Same set-up as bench/run.sh (venv, throwaway PostgreSQL cluster, always stopped); prints one
# table and writes it to bench/results/analytics-<timestamp>.md.
exec "$(dirname "${BASH_SOURCE[0]}")/run.sh" --suite analytics "$@"
