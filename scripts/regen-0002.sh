#!/usr/bin/env bash
# Development helper while migration 0002 is unreleased: regenerate it from the models.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f migrations/versions/0002_lifecycle.py
REMIT_DATA_DIR=$tmp .venv/bin/alembic upgrade head >/dev/null
REMIT_DATA_DIR=$tmp .venv/bin/alembic revision --autogenerate --rev-id 0002 \
  -m "lifecycle: policies, requests, approvals, assignments, grants, jobs, external users" >/dev/null
mv migrations/versions/0002_lifecycle_*.py migrations/versions/0002_lifecycle.py
.venv/bin/ruff format -q migrations/versions/0002_lifecycle.py
rm -rf "$tmp"
echo "regenerated migrations/versions/0002_lifecycle.py"
