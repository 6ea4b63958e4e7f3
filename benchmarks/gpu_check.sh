#!/usr/bin/env bash
# GPU check (one H100/H200): about 9 minutes with the default time limits (200 + 180 + 2 x 45 + 60 s = 9 min),
# plus the un-timed steps (the CUDA check and the SRResNet table's evaluation): the converged mini tier (one
# seed; its M and S runs first trained packed, their weights stacked in one process (mini_mio.py --pack,
# MINI_PACK=1), then its five strategies at once in worker processes: a tiny model leaves the GPU mostly
# idle; on one H200 the five went at 19-26 it/s each, so the 270 s default shows their learning curves;
# with MPS=1 the five went at 136 it/s together (seed 2 in session 8, 10 periods: about 10 minutes), so a
# whole seed of the 16-period tier (5 x 24,000 iterations) needs about 15 minutes: through the device
# tool's 10-minute calls, two calls on the warm machine with the same DEST, which git ignores) and a short
# full-size SRResNet M vs S+EP budget; prints the tables and iterations per second;
# then the speed options side by side (benchmarks/train_speed.py: it/s per preset in fp32 / bf16 / compile /
# channels-last, synthesis patches/s per task with the per-image torch stream and the device Philox stream,
# JPEG with the DiffJPEG codec batched on the GPU as synthesis=device runs it (128 px, batch 64), the rain streak layer in NumPy on the CPU vs in torch on the GPU, the tier's runs packed vs separate); then times SwinIR, Restormer and PromptIR (benchmarks/backbone_speed.py)
# for their GPU-hours per strategy.
# Installs nothing; uses the repository's package from the working tree (basicsr must import; the U-Nets
# need spandrel-extra-arches). For a machine without them, prepare wheels here and install them there:
#   pip wheel --no-deps --no-build-isolation basicsr==1.4.2 -w .whl
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       -d .whl spandrel spandrel-extra-arches einops safetensors
#   (there) pip install --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
# Work goes to $DEST (default ./gpu-check); when $OUT is set (the device tool, which brings back at most 8
# files), right after each step: gpu_check_mini.tgz (the mini tier's logs, results, configs and summary),
# ship.tgz (benchmarks/ship_weights.py's output: the five strategies' weights when every one beats the identity on
# every task, else M+EP and S+EP when those two do),
# mini_<run>.pt (exported EMA weights of each finished mini run) and gpu_check_rest.tgz (the other logs).
# Knobs (environment): MINI_SEED (the paired seed, 0), MINI_ITERS (iterations per period) and MINI_PERIODS
# (periods; both default to the tier's own, mini_converged.yaml's), MINI_JOBS
# (runs at once, 5), MINI_WORKERS (data workers per run, 2), MINI_TIMEOUT (s, 200), MINI_PACK (1: M and S packed
# first; 0: not), MINI_SYNTHESIS (device: the tier's runs draw the Philox stream and degrade their batches on the
# GPU, synthesis=device, since per-patch synthesis on the CPU workers bounds a tiny model's speed; loader: the
# tier's own data path, as on a CPU; the noise and rain fields differ between the two), MINI_TESTSET (side of the test
# crops; default the tier's own, so that the runs can be adopted into its results), TRAIN_SPEED_TIMEOUT (s, 180),
# TRAIN_SPEED_SECONDS (timed seconds per cell, 1.5), FULL_ITERS (per period, 7
# periods, default 150), FULL_TIMEOUT (s per strategy, 45), SPEED_ITERS (per backbone, 40), SPEED_TIMEOUT
# (s, 60), WORKERS (12), MPS (1: run the steps under CUDA MPS, so that the mini tier's processes share the GPU
# at once; falls back to plain sharing where it does not start). A timeout of 0 skips its step. The mini tier resumes: run the script again with the
# same DEST to continue.
set -uo pipefail
out_abs=""
if [ -n "${OUT:-}" ]; then  # resolved before the cd below: a relative OUT is the caller's
  mkdir -p "$OUT" && out_abs=$(cd "$OUT" && pwd) || { echo "error: cannot use OUT=$OUT" >&2; exit 2; }
fi
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=${DEST:-gpu-check}
mkdir -p "$DEST"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('device:', torch.cuda.get_device_name(0), 'torch', torch.__version__)" || exit 1
: "${MINI_SEED:=0}" "${MINI_ITERS:=}" "${MINI_PERIODS:=}" "${MINI_JOBS:=5}" "${MINI_WORKERS:=2}" "${MINI_TIMEOUT:=200}" "${MINI_TESTSET:=}"
: "${MINI_PACK:=1}" "${MINI_SYNTHESIS:=device}" "${TRAIN_SPEED_TIMEOUT:=180}" "${TRAIN_SPEED_SECONDS:=1.5}"
: "${FULL_ITERS:=150}" "${FULL_TIMEOUT:=45}" "${SPEED_ITERS:=40}" "${SPEED_TIMEOUT:=60}" "${WORKERS:=12}"
case "$MINI_SYNTHESIS" in
  device|loader) ;;
  *) echo "error: MINI_SYNTHESIS=$MINI_SYNTHESIS: give device or loader" >&2; exit 2 ;;
esac
for knob in MINI_TIMEOUT FULL_TIMEOUT SPEED_TIMEOUT TRAIN_SPEED_TIMEOUT; do
  case "${!knob}" in
    ''|*[!0-9]*) echo "error: $knob=${!knob}: give whole seconds (0 skips the step)" >&2; exit 2 ;;
  esac
done
# after the knobs are checked: nothing is started for a call that is refused
if [ "${MPS:-0}" = 1 ]; then  # CUDA MPS: the worker processes' kernels share the GPU instead of taking turns
  if command -v nvidia-cuda-mps-control >/dev/null; then
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/mio-mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mio-mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    if nvidia-cuda-mps-control -d && trap 'echo quit | nvidia-cuda-mps-control' EXIT \
        && timeout 60 $PY -c "import torch; torch.ones(1, device='cuda').sum().item()"; then
      echo "CUDA MPS on (control daemon started; stopped at exit)"
    else
      echo quit | nvidia-cuda-mps-control 2>/dev/null; trap - EXIT
      unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
      echo "(CUDA MPS did not start; going on without it)"
    fi
  else
    echo "(MPS=1 but nvidia-cuda-mps-control is not on this machine; going on without it)"
  fi
fi

if [ "$MINI_TIMEOUT" -gt 0 ]; then
  mini_args=()  # the tier's own schedule and test set unless a knob asks for another
  [ -n "$MINI_ITERS" ] && mini_args+=(--set period_iters="$MINI_ITERS")
  [ -n "$MINI_PERIODS" ] && mini_args+=(--set periods="$MINI_PERIODS")
  [ -n "$MINI_TESTSET" ] && mini_args+=(--testset-size "$MINI_TESTSET")
  pack_args=()
  [ "$MINI_PACK" = 1 ] && pack_args+=(--pack)
  synth_args=()
  [ "$MINI_SYNTHESIS" = device ] && synth_args+=(--set synthesis=device --set stream=philox)
  echo "== converged mini tier (M, S, M+EP, S+EP, S+AP; seed $MINI_SEED;" \
       "${MINI_PERIODS:-its own} periods x ${MINI_ITERS:-its own} iterations; $MINI_JOBS at once;" \
       "synthesis: $MINI_SYNTHESIS)"
  timeout "$MINI_TIMEOUT" $PY benchmarks/mini_mio.py --tier converged --seeds "$MINI_SEED" --jobs "$MINI_JOBS" --set device=cuda \
      --set num_workers="$MINI_WORKERS" "${mini_args[@]}" --set checkpoint_every=1000 \
      --status-every 120 --output "$DEST/mini-converged" "${pack_args[@]}" "${synth_args[@]}" 2>&1 | tee "$DEST/mini.log" \
      || echo "(mini tier stopped at its time limit; re-run the same command to resume)"
  if [ -n "$out_abs" ]; then
    (cd "$DEST" && ls -d mini.log mini-converged/summary.md mini-converged/*/result.json mini-converged/*/log.jsonl \
                         mini-converged/*/config.yaml 2>/dev/null | tar czf "$out_abs/gpu_check_mini.tgz" -T -)
    # the main job's five strategies when all five beat the identity on every task, else the two prompt models
    { $PY benchmarks/ship_weights.py --results "$DEST/mini-converged" --seed "$MINI_SEED" --dest "$DEST/ship" --overwrite \
          --strategies M S M+EP S+EP S+AP \
        || $PY benchmarks/ship_weights.py --results "$DEST/mini-converged" --seed "$MINI_SEED" --dest "$DEST/ship" \
          --overwrite; } && tar czf "$out_abs/ship.tgz" -C "$DEST" ship
    $PY - "$DEST/mini-converged" "$out_abs" "$MINI_SEED" <<'PYEOF'
import sys
from pathlib import Path
from mio_strategies.harness import export_weights
for run in sorted(Path(sys.argv[1]).glob(f"*-seed{sys.argv[3]}")):
    if (run / "result.json").is_file():
        print("exported", export_weights(run / "checkpoint.pt", Path(sys.argv[2]) / f"mini_{run.name}.pt", overwrite=True))
PYEOF
  fi
fi

if [ "$TRAIN_SPEED_TIMEOUT" -gt 0 ]; then
  echo "== speed options, synthesis streams and packed runs side by side (benchmarks/train_speed.py)"
  timeout "$TRAIN_SPEED_TIMEOUT" $PY benchmarks/train_speed.py --device cuda --seconds "$TRAIN_SPEED_SECONDS" \
      --batch 64 --patch 128 2>&1 | tee "$DEST/train_speed.log" || echo "(train_speed.py stopped at its time limit)"
  if [ -n "$out_abs" ]; then  # now, in case a later step is cut off
    (cd "$DEST" && ls -d train_speed.log 2>/dev/null | tar czf "$out_abs/gpu_check_rest.tgz" -T -)
  fi
fi

if [ "$FULL_TIMEOUT" -gt 0 ]; then
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
from mio_strategies.harness import evaluate, format_table, load_restorer
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
fi

if [ "$SPEED_TIMEOUT" -gt 0 ]; then
  echo "== training speed and GPU-hours of the other full-size presets ($SPEED_ITERS iterations each)"
  timeout "$SPEED_TIMEOUT" $PY benchmarks/backbone_speed.py --presets swinir restormer promptir --device cuda \
      --iters "$SPEED_ITERS" --set num_workers="$WORKERS" 2>&1 | grep -v "warn" | tee "$DEST/speed.log" \
      || echo "(speed check stopped at its time limit)"
fi

if [ -n "$out_abs" ]; then
  (cd "$DEST" && ls -d train_speed.log full.log speed.log srresnet_short.md 2>/dev/null | tar czf "$out_abs/gpu_check_rest.tgz" -T -)
fi
exit 0
