#!/usr/bin/env bash
# Run the public-data presets, each in its own clone of this repository, and
# print their result tables for docs/real-data.md.
#
# Usage: ERP_PSEUDONYM_KEY=<16+ characters> scripts/real_data_runs.sh [preset ...]
# Presets default to ibm_ar_late_payment endava_tickets bham_pcard. Each clone
# is made next to this repository (../erp-distill-<preset>), so that the
# source configs find the data in ../shared/data/real. A clone keeps its own
# params.yaml, dvc.lock, outputs and mlflow.db, and this workspace stays as it is.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
presets=("$@")
if [ ${#presets[@]} -eq 0 ]; then
  presets=(ibm_ar_late_payment endava_tickets bham_pcard)
fi
: "${ERP_PSEUDONYM_KEY:?set ERP_PSEUDONYM_KEY (16 or more characters): the real data sets pseudonymize ids}"

for preset in "${presets[@]}"; do
  clone="$(dirname "$repo")/erp-distill-$preset"
  rm -rf "$clone"
  git clone --quiet "$repo" "$clone"
  ln -s "$repo/.venv" "$clone/.venv"
  (
    cd "$clone"
    export PATH="$clone/.venv/bin:$PATH"
    started=$(date +%s)
    dvc exp run -S "experiment=$preset"
    echo "== $preset: dvc exp run took $(( $(date +%s) - started )) s in $clone"
    python scripts/results_table.py reports
  )
done
