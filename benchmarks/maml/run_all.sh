#!/usr/bin/env bash
# Train and test every MAML-TRPO benchmark config (or the ones named on the command line), then
# collect the results under benchmarks/maml/results/. Runs in runs/maml/<name>/ (not committed).
#   bash benchmarks/maml/run_all.sh                      # all configs (about 45-60 min one after another on 2 busy cores)
#   bash benchmarks/maml/run_all.sh bandit-k5-n100       # one config
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=benchmarks/maml/results
mkdir -p "$OUT"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(bandit-k5-n100 tabular-mdp-n10 tabular-mdp-n25
         bandit-k5-n10 bandit-k5-n500 bandit-k10-n10 bandit-k10-n100 bandit-k10-n500
         bandit-k50-n10 bandit-k50-n100 bandit-k50-n500)
fi
for name in "${names[@]}"; do
  cfg=benchmarks/maml/$name.toml
  start=$(date +%s)
  $PY -m mandril maml-rl train --config "$cfg" --no-progress
  end=$(date +%s)
  echo "$name train_wall_s $((end - start))" >> "$OUT/train_times.txt"
  # the reported figure: best.pt (selected on train-split validation tasks); also the last parameters and the
  # initial ones (the same inner step without meta-training: the ablation)
  $PY -m mandril maml-rl test --config "$cfg" --no-progress --checkpoint "runs/maml/$name/best.pt" --output "$OUT/$name.json"
  $PY -m mandril maml-rl test --config "$cfg" --no-progress --output "$OUT/$name-last.json"
  $PY -m mandril maml-rl test --config "$cfg" --no-progress --init --output "$OUT/$name-init.json"
  cp "runs/maml/$name/metrics.csv" "$OUT/$name-metrics.csv"
  cp "runs/maml/$name/curve.png" "$OUT/$name-curve.png"
done
$PY benchmarks/maml/summarize.py "$OUT" > "$OUT/summary.md"
cat "$OUT/summary.md"
