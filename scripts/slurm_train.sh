#!/bin/bash
# Multi-node data-parallel training of one vloom experiment under SLURM.
#
#   sbatch --nodes 2 scripts/slurm_train.sh configs/qwen2vl.yaml runs/qwen2vl/packed runs/qwen2vl
#
# One torchrun launcher per node (srun --ntasks-per-node 1) starts one worker per GPU; the
# workers meet at a c10d rendezvous on the first node. The same YAML runs on a laptop
# (`vloom train`) and here: only the launcher differs. The global batch is
# train.batch_size x train.grad_accum sequences whatever the number of GPUs, which must
# divide it. Set train.parallel: fsdp for a model that does not fit one GPU. Rerunning
# the same command resumes from the newest complete checkpoint, on any number of GPUs.
#SBATCH --job-name=vloom-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail

CONFIG=${1:?usage: sbatch scripts/slurm_train.sh CONFIG PACKED_DIR RUN_DIR}
PACKED=${2:?packed data directory (vloom pack output)}
RUN=${3:?run directory}
GPUS_PER_NODE=${SLURM_GPUS_ON_NODE:-8}
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)

srun torchrun \
  --nnodes "$SLURM_NNODES" \
  --nproc_per_node "$GPUS_PER_NODE" \
  --rdzv_id "$SLURM_JOB_ID" \
  --rdzv_backend c10d \
  --rdzv_endpoint "$HEAD:29500" \
  -m vloom train "$PACKED" --out "$RUN" --config "$CONFIG"
