#!/usr/bin/env bash
# GPU check (one H100/H200, under ~9 minutes): the converged mini tier (one seed, its five strategies
# trained at once in worker processes: a tiny model leaves the GPU mostly idle) and a short full-size
# SRResNet M vs S+EP budget; prints the tables and iterations per second.
# Installs nothing; uses the repository's package from the working tree (basicsr must import).
# Work goes to $DEST (default ./gpu-check); when $OUT is set (the device tool), the logs, tables and
# the mini tier's S+EP checkpoint are copied there (a handful of files).
# Knobs (environment): MINI_ITERS (iterations per period, default 1500: the tier's own), MINI_JOBS (runs at
# once, 5), MINI_WORKERS (data workers per run, 2), MINI_TIMEOUT (s, 300), FULL_ITERS (per period, 7
# periods, default 150), FULL_TIMEOUT (s per strategy, 90), WORKERS (12). The mini tier resumes: run the
# script again with the same DEST to continue stopped runs.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=${DEST:-gpu-check}
mkdir -p "$DEST"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('device:', torch.cuda.get_device_name(0), 'torch', torch.__version__)" || exit 1
: "${MINI_ITERS:=1500}" "${MINI_JOBS:=5}" "${MINI_WORKERS:=2}" "${MINI_TIMEOUT:=300}"
: "${FULL_ITERS:=150}" "${FULL_TIMEOUT:=90}" "${WORKERS:=12}"

echo "== converged mini tier (M, S, M+EP, S+EP, S+AP; seed 0; $MINI_ITERS iterations per period; $MINI_JOBS at once)"
timeout "$MINI_TIMEOUT" $PY benchmarks/mini_mio.py --tier converged --seeds 0 --jobs "$MINI_JOBS" --set device=cuda \
    --set num_workers="$MINI_WORKERS" --set period_iters="$MINI_ITERS" --set checkpoint_every=1000 \
    --output "$DEST/mini-converged" 2>&1 | tee "$DEST/mini.log" \
    || echo "(mini tier stopped at its time limit; re-run the same command to resume)"

echo "== full-size SRResNet (64 ch, 16 blocks, 128 px, batch 16), M vs S+EP, 7 periods x $FULL_ITERS"
for S in M S+EP; do
  timeout "$FULL_TIMEOUT" $PY -m mio_strategies train --config gpu_short --set strategy=$S --set device=cuda \
      --set num_workers="$WORKERS" --set period_iters="$FULL_ITERS" --output "$DEST/srresnet-${S/+/_}" --overwrite \
      --no-progress 2>&1 | tee -a "$DEST/full.log" || echo "(SRResNet $S stopped at its time limit)"
done
if [ -f "$DEST/srresnet-M/checkpoint.pt" ] && [ -f "$DEST/srresnet-S_EP/checkpoint.pt" ]; then
  $PY - "$DEST" <<'PYEOF'
import sys
from pathlib import Path
from mio_strategies.data import MiODataset, embedded_image_paths
from mio_strategies.harness import evaluate, format_table
from mio_strategies.harness._train import load_restorer
dest = Path(sys.argv[1])
data = MiODataset(embedded_image_paths(), "SBNJRHL", patch_size=128, augment=False, seed=12345)
res = []
for name in ("M", "S_EP"):
    r, cfg, _ = load_restorer(dest / f"srresnet-{name}" / "checkpoint.pt", device="cuda")
    res.append(evaluate(r, data, name=cfg.strategy, device="cuda"))
table = format_table(res, baseline="M", reference=[("srresnet", "M", "in"), ("srresnet", "S+EP", "in")])
print(table)
(dest / "srresnet_short.md").write_text(table)
PYEOF
fi
if [ -n "${OUT:-}" ]; then
  out_abs=$(cd "$OUT" && pwd)
  (cd "$DEST" && for f in mini.log full.log srresnet_short.md mini-converged/summary.md \
                          mini-converged/*/result.json mini-converged/*/log.jsonl; do
     [ -f "$f" ] && cp "$f" "$out_abs/$(echo "$f" | tr '/' '_')"
   done)
  [ -f "$DEST/mini-converged/S_EP-seed0/checkpoint.pt" ] && cp "$DEST/mini-converged/S_EP-seed0/checkpoint.pt" "$OUT/mini_S_EP_checkpoint.pt"
  [ -f "$DEST/mini-converged/S_EP-seed0/log.jsonl" ] && cp "$DEST/mini-converged/S_EP-seed0/log.jsonl" "$OUT/mini_S_EP_log.jsonl"
fi
exit 0
