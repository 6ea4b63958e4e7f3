#!/usr/bin/env bash
# GPU check (one H100/H200, under ~8 minutes): the converged mini tier (one seed, shortened to fit)
# and a short full-size SRResNet M vs S+EP budget; prints the tables and iterations per second.
# Installs nothing; uses the repository's package from the working tree. Results under $OUT (or ./gpu-check).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DEST=${OUT:-gpu-check}
mkdir -p "$DEST"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('device:', torch.cuda.get_device_name(0))"

echo "== converged mini tier (M, S, M+EP, S+EP, S+AP; seed 0; ${MINI_ITERS:=600} iterations per period)"
timeout 300 $PY benchmarks/mini_mio.py --tier converged --seeds 0 --set device=cuda --set num_workers=4 \
    --set period_iters=$MINI_ITERS --set checkpoint_every=0 --output "$DEST/mini-converged" 2>&1 | tee "$DEST/mini.log" || echo "(mini tier stopped at its time limit; re-run to resume)"

echo "== full-size SRResNet (64 ch, 16 blocks, 128 px, batch 16), M vs S+EP, 7 periods x ${FULL_ITERS:=150}"
for S in M S+EP; do
  timeout 120 $PY -m mio_strategies train --config gpu_short --set strategy=$S --set device=cuda --set num_workers=4 \
      --set period_iters=$FULL_ITERS --output "$DEST/srresnet-${S/+/_}" --overwrite --no-progress 2>&1 | tee -a "$DEST/full.log" || true
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
