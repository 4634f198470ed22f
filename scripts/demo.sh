#!/usr/bin/env bash
# The demo, end to end on a CPU: bake a project, install it, run the smoke ablation of every baseline
# (2 variants x 3 seeds each, synthetic data) as Hydra multiruns, and print the statistical comparisons.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
PY="$PWD/.venv/bin/python"

rm -rf demo
"$PY" -m cookiecutter --no-input -o demo . project_name="Demo Paper" tracker=none init_git=yes
cd demo/demo-paper
"$PY" -m pip install --quiet -e .

start=$(date +%s)
while read -r experiment variants metric; do
    echo
    echo "=== $experiment: $variants x seeds 0,1,2 ==="
    "$PY" -m demo_paper.train -m "experiment=$experiment" trainer=smoke "ablation=$variants" seed=0,1,2 \
        hydra/hydra_logging=disabled > "runs-$experiment.log" 2>&1 \
        || { cat "runs-$experiment.log"; exit 1; }
    "$PY" -m demo_paper.compare "runs/$experiment" --metric "$metric"
done <<'TABLE'
transformer_shakespeare transformer_full,transformer_no_attention val/loss
vit_cifar10 vit_full,vit_no_pos_embedding test/acc
simclr_cifar10 simclr_full,simclr_weak_aug knn/acc
TABLE
echo
echo "demo finished in $(( $(date +%s) - start )) s: see demo/demo-paper/runs/*/comparison.md"
