#!/usr/bin/env bash
# Meta-train several placing runs at once on one GPU machine for a fixed wall-clock budget (why these
# four: docs/results.md, "Placing: four more runs on one H200"). The machine needs torch, numpy,
# safetensors, PyYAML and tqdm; rosbags and its needs can come as wheels. It needs no bags: CACHE_TAR
# holds one dataset cache directory (DEMOS/.mil_cache/placing-T30-<hash>, built here by any train run
# with config/train_placing_60x40.yaml, packed with tar), which `train --demos` accepts alone.
#
#   scripts/gpu_train_placing.sh CACHE_TAR SECONDS OUT_DIR [DEVICE]
#
# Packing here and running there (the cache of the 1680-demo placing set is 350 MB, 41 MB packed):
#   tar -C data/demos_p400/.mil_cache -I 'xz -T2 -6' -cf .gpu/placing60x40_cache.tar.xz placing-T30-<hash>
#   (there) python3 -m pip install --no-index --no-deps --target /tmp/site .whl/*.whl  # rosbags & needs
#   (there) PYTHONPATH=/tmp/site scripts/gpu_train_placing.sh .gpu/placing60x40_cache.tar.xz 510 /tmp/runs
#
# Each run is stopped with SIGTERM after SECONDS (the trainer finishes its iteration and saves
# OUT_DIR/<run>/checkpoint with its optimiser state, so `train --resume` continues it); logs go to
# OUT_DIR/<run>.log. Four processes share the GPU: one alone leaves most of it idle at this size.
# The presets keep weights every 500 iterations (OUT_DIR/<run>/snapshots/, 0.1 MB each): bring the run
# directories back and pick each run's checkpoint with `select_checkpoint` on the CPU machine, not by
# validation loss (docs/evaluation.md), rather than spend the lease on rollouts.
set -euo pipefail
cache_tar=$1 budget=$2 out=$3 device=${4:-cuda}
py=${PYTHON:-python3}
root=$(pwd)
export PYTHONPATH="$root/src/mil_policy:$root/src/mil_sim${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$out"
work=$(mktemp -d)
"$py" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' "$cache_tar" "$work"
cache=$(echo "$work"/placing-T30-*)
[ -f "$cache/meta.json" ] || { echo "no placing cache in $cache_tar" >&2; exit 2; }
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'

train() {  # NAME ARGS...: one run in the background, stopped after the budget
  local name=$1
  shift
  timeout -s TERM "$budget" "$py" -m mil_policy.train --demos "$cache" --out "$out/$name" --device "$device" \
    --threads 4 --iterations 40000 "$@" >"$out/$name.log" 2>&1 &
}
wide=(--config config/train_placing_60x40.yaml --set maml.meta_batch=24)
# The shipped checkpoint (10500 iterations; its optimiser state was not kept) trained on, with its seed:
# the seed also splits train / validation tasks, and another would validate on tasks it trained on.
train g60_cont "${wide[@]}" --init-weights src/mil_policy/mil_policy/assets/placing_checkpoint
# MIL from video only at the shipped checkpoint's scale.
train g60_video --config config/train_placing_60x40_video.yaml --set maml.meta_batch=24
# The shipped recipe again with another seed: is 34% reproducible?
train g60_mb24_s1 "${wide[@]}" --set train.seed=1
# MIL from video + state (section 4.2's two heads, the demo's robot states kept, its actions not).
train g60_state --config config/train_placing_60x40_video.yaml --set maml.meta_batch=24 --set maml.demo_inputs=no_actions
status=0
for _ in 1 2 3 4; do
  wait -n || { rc=$?; [ "$rc" = 124 ] || [ "$rc" = 130 ] || status=$rc; }  # 124 / 130: stopped at the budget
done
rm -rf "$work"
for log in "$out"/*.log; do tail -c 300 "$log" | tr '\r' '\n' | tail -n 2; done
exit "$status"
