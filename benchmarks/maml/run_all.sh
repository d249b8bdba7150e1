#!/usr/bin/env bash
# Train and test MAML-TRPO benchmark configs, then collect the results under benchmarks/maml/results/.
# Runs go to runs/maml/<name>/ (not committed); an existing run directory is refused by `train`, so
# remove it first (or pass RESUME=1 to continue it).
#   bash benchmarks/maml/run_all.sh                          # every config: adaptation (m = n) and budget-matched ones
#   bash benchmarks/maml/run_all.sh bandit-k5-n100           # one config (benchmarks/maml/<name>.toml)
#   bash benchmarks/maml/run_all.sh budget/bandit-k5-n100    # one budget-matched config (benchmarks/maml/budget/...)
#   bash benchmarks/maml/run_all.sh ablations/bandit-k5-n100-fd-hvp ablations/bandit-k5-n100-first-order
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in benchmarks/maml/budget/*.toml benchmarks/maml/*.toml; do
    f=${f#benchmarks/maml/}; names+=("${f%.toml}")
  done
fi
resume=()
if [ "${RESUME:-0}" = 1 ]; then resume=(--resume); fi
for name in "${names[@]}"; do
  cfg=benchmarks/maml/$name.toml
  base=$(basename "$name")
  case "$name" in
    budget/*) out=benchmarks/maml/results/budget; run=runs/maml/budget-$base ;;
    ablations/*) out=benchmarks/maml/results/ablations; run=runs/maml/ablation-$base ;;
    *) out=benchmarks/maml/results; run=runs/maml/$base ;;
  esac
  mkdir -p "$out"
  start=$(date +%s)
  $PY -m mandril maml-rl train --config "$cfg" --output-dir "$run" --no-progress "${resume[@]}"
  end=$(date +%s)
  echo "$name train_wall_s $((end - start))" >> "$out/train_times.txt"
  # the reported figure: best.pt (selected on train-split validation tasks), with the reference policies;
  # then the last parameters and the initial ones (the same inner step without meta-training: the ablation)
  $PY -m mandril maml-rl test --config "$cfg" --output-dir "$run" --no-progress --checkpoint "$run/best.pt" --output "$out/$base.json"
  $PY -m mandril maml-rl test --config "$cfg" --output-dir "$run" --no-progress --no-references --output "$out/$base-last.json"
  $PY -m mandril maml-rl test --config "$cfg" --output-dir "$run" --no-progress --no-references --init --output "$out/$base-init.json"
  cp "$run/metrics.csv" "$out/$base-metrics.csv"
  cp "$run/curve.png" "$out/$base-curve.png"
done
for out in benchmarks/maml/results benchmarks/maml/results/budget benchmarks/maml/results/ablations; do
  if ls "$out"/*.json > /dev/null 2>&1; then $PY benchmarks/maml/summarize.py "$out" > "$out/summary.md"; cat "$out/summary.md"; fi
done
