#!/usr/bin/env bash
# Runs every benchmark of README's table, each in its own process (peak RSS = VmHWM belongs to that measurement alone),
# on SD 1.5-size architectures with random weights (configs from ../shared/parity/keys/sd15). Prints one line each.
# Usage: bench/run.sh [threads]   (default: 2). Takes ~20 minutes on 2 cores; variant (a) needs > 24 GiB of RAM.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
threads="${1:-2}"
db() { "$here/dreambooth" bench "$@" --threads "$threads"; }
db unet --dtype fp32 --steps 2
db unet --dtype bf16 --steps 2
db pipeline --steps 3
db train-step --variant b --steps 1
db train-step --variant c --steps 1
db train-step --variant a --steps 1 || echo "train-step (a) failed (exit $?): fp32 AdamW without checkpointing needs more memory than this machine has"
