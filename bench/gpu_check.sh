#!/usr/bin/env bash
# GPU check for the trainer, for a lent CUDA machine (not run in CI; finishes in well under 5 minutes).
# SD1.5-shaped random-weight model (860 M UNet, published config, nothing downloaded), 512 px, bf16
# (mixed precision "auto" picks bf16 where supported), LoRA rank 16, cached latents, batch 1 and 4:
# prints steps/s, samples/s, the step split and peak VRAM for each.
#
#   bash bench/gpu_check.sh            # uses .venv/bin/python if present, else python3
#   PYTHON=/path/to/python bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export HF_HUB_OFFLINE=1 DIFFUSERS_VERBOSITY=error TRANSFORMERS_VERBOSITY=error
"$PY" - <<'PYEOF'
import sys
try:
    import torch, diffusers, transformers, peft, accelerate  # noqa: F401
except ImportError as err:
    sys.exit(f"gpu_check: missing Python package ({err}); install the project's dependencies with a CUDA torch")
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to torch")
print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; bf16 {torch.cuda.is_bf16_supported()}")
PYEOF
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader || true
for B in 1 4; do
  timeout 140 "$PY" bench/train_throughput.py --models sd15 --resolution 512 --batch "$B" --steps 14 \
    --rank 16 --cache on || echo "batch $B: failed or timed out"
done
