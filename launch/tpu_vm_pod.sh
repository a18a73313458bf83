#!/usr/bin/env bash
# Train emu_jax on a Cloud TPU VM slice (e.g. v5p-128 = 16 hosts): copy the repo to every
# worker, install it with jax[tpu], then start `emu-video train --distributed` on all workers
# at once. JAX's runtime finds the other workers itself (jax.distributed.initialize on a TPU VM).
#
# Usage:  TPU_NAME=my-v5p ZONE=us-east5-a PROJECT=my-proj WORKDIR=/mnt/shared/runs/stage2 \
#         launch/tpu_vm_pod.sh [create|setup|aot|train|logs|stop|delete] [--config.a.b=v ...]
# Steps default to "setup train". Nothing here runs on the machine you call it from except gcloud.
set -euo pipefail

: "${TPU_NAME:?set TPU_NAME (name of the TPU VM)}"
: "${ZONE:?set ZONE (e.g. us-east5-a)}"
: "${PROJECT:?set PROJECT (the GCP project)}"
ACCELERATOR=${ACCELERATOR:-v5p-128}            # slice type, for create and aot
RUNTIME=${RUNTIME:-v2-alpha-tpuv5}             # TPU VM software version (v2-alpha-tpuv5-lite for v5e)
CONFIG=${CONFIG:-configs/emu_video.py:stage2}  # experiment config (see configs/emu_video.py)
WORKDIR=${WORKDIR:-}                           # shared by all workers: gcsfuse mount or Filestore path
REMOTE_DIR=${REMOTE_DIR:-emu_jax}              # repo copy in each worker's home
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

step=${1:-}
case "$step" in
  create|setup|aot|train|logs|stop|delete) shift ;;
  *) step=default ;;
esac
overrides=("$@")  # e.g. --config.train.init_from=/mnt/shared/runs/stage1

ssh_all() {  # run one command line on every worker of the slice
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --project="$PROJECT" --worker=all --command="$1"
}

create() {
  gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE" --project="$PROJECT" \
    --accelerator-type="$ACCELERATOR" --version="$RUNTIME"
}

setup() {  # code + environment on every worker (rerun after changing the code)
  gcloud compute tpus tpu-vm scp --recurse "$REPO" "$TPU_NAME":"~/$REMOTE_DIR.new" \
    --zone="$ZONE" --project="$PROJECT" --worker=all
  ssh_all "rm -rf ~/$REMOTE_DIR && mv ~/$REMOTE_DIR.new ~/$REMOTE_DIR && cd ~/$REMOTE_DIR && \
    python3 -m venv .venv && .venv/bin/pip install -q -U pip && .venv/bin/pip install -q -e '.[tpu]'"
}

aot() {  # compile check on worker 0 only: does the config fit the slice's HBM?
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --project="$PROJECT" --worker=0 --command="\
    cd ~/$REMOTE_DIR && JAX_PLATFORMS=cpu .venv/bin/emu-video aot --config $CONFIG --topology $ACCELERATOR \
    ${overrides[*]:-}"
}

train() {  # one process per worker, in the background (survives the ssh session); logs in ~/train.log
  : "${WORKDIR:?set WORKDIR to a path every worker shares (checkpoints + metrics)}"
  local env="JAX_COMPILATION_CACHE_DIR=\$HOME/.jax_cache TF_CPP_MIN_LOG_LEVEL=1"
  ssh_all "cd ~/$REMOTE_DIR && $env nohup .venv/bin/emu-video train --distributed \
    --config $CONFIG --workdir $WORKDIR ${overrides[*]:-} > ~/train.log 2>&1 & echo \$! > ~/train.pid"
}

logs() { gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --project="$PROJECT" --worker=0 \
  --command="tail -n 50 ~/train.log"; }
# SIGTERM is what a preemption sends: JAX's preemption sync point makes every worker save the
# same step and exit; `train` resumes from it.
stop() { ssh_all "kill -TERM \$(cat ~/train.pid) 2>/dev/null || true"; }
delete() { gcloud compute tpus tpu-vm delete "$TPU_NAME" --zone="$ZONE" --project="$PROJECT" --quiet; }

if [[ $step == default ]]; then
  setup
  train
else
  "$step"
fi
