#!/usr/bin/env bash
# Alembic checks on the database named by REMIT_DATABASE_URL (or the SQLite default):
# one head, upgrade head, models == migrations, downgrade -1 and back up.
set -euo pipefail
cd "$(dirname "$0")/.."
alembic=.venv/bin/alembic
heads=$($alembic heads | grep -c head)
if [ "$heads" -ne 1 ]; then echo "alembic has $heads heads" >&2; exit 1; fi
$alembic upgrade head
$alembic check
$alembic downgrade -1
$alembic upgrade head
echo "migrations OK on ${REMIT_DATABASE_URL:-sqlite in ${REMIT_DATA_DIR:-data}}"
