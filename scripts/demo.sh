#!/usr/bin/env bash
# The demo, end to end on a CPU: bake a project, install it, run the smoke ablation of every baseline
# (2 variants x 3 seeds each, synthetic data; `python -m demo_paper.ablate`: a Hydra multirun, then the
# statistical comparison) and print the comparison tables. DEMO_DIR (default: demo/) is where it goes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
PY="$PWD/.venv/bin/python"
DEMO_DIR="${DEMO_DIR:-$PWD/demo}"

rm -rf "$DEMO_DIR/demo-paper"  # only what an earlier demo made: DEMO_DIR may hold other things
"$PY" -m cookiecutter --no-input -o "$DEMO_DIR" . project_name="Demo Paper" tracker=none init_git=yes
cd "$DEMO_DIR/demo-paper"
"$PY" -m pip install --quiet -e .

start=$(date +%s)
while read -r experiment variants; do
    echo
    echo "=== $experiment: $variants x seeds 0,1,2 ==="
    "$PY" -m demo_paper.ablate "experiment=$experiment" trainer=smoke --variants "$variants" --seeds 0,1,2 \
        hydra/hydra_logging=disabled > "runs-$experiment.log" 2>&1 \
        || { cat "runs-$experiment.log"; exit 1; }
    cat "runs/$experiment/comparison.md"
done <<'TABLE'
transformer_shakespeare full,no_attention
vit_cifar10 full,no_pos_embedding
simclr_cifar10 full,weak_aug
TABLE
echo
# Pooled as rliable does: each task's scores normalised between a trivial model (a uniform guess over 65
# characters: ln 65 = 4.174 nats; chance accuracy 0.1) and a perfect one, each ablation renamed `ablated`.
echo "=== the three ablations pooled: normalised scores (0 = trivial model, 1 = perfect) ==="
"$PY" -m demo_paper.aggregate runs/transformer_shakespeare=4.174:0 runs/vit_cifar10=0.1:1 runs/simclr_cifar10=0.1:1 \
    --rename no_attention=ablated --rename no_pos_embedding=ablated --rename weak_aug=ablated --out runs/aggregate
echo
echo "demo finished in $(( $(date +%s) - start )) s: see $DEMO_DIR/demo-paper/runs/*/comparison.md"
