#!/usr/bin/env bash
# hubmirror bench as a Slurm job array: task i of the array measures one shard of the site's models (a stable
# partition by model key), on one GPU, in its own mirror root on the node's local disk; every row goes to the site's
# bucket. A task that is requeued resumes its shard (models measured already are skipped).
#   HUBMIRROR_STORE=s3://models/site sbatch docs/cluster/slurm-array.sh [more bench options]
#SBATCH --job-name=hubmirror-bench
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --output=hubmirror-bench-%A_%a.log
set -euo pipefail
: "${HUBMIRROR_STORE:?set HUBMIRROR_STORE=s3://BUCKET/PREFIX, the store of the site}"
export HUBMIRROR_STORE
export HUBMIRROR_HOME="${HUBMIRROR_HOME:-${TMPDIR:-/tmp}/hubmirror-${SLURM_ARRAY_JOB_ID}-${SLURM_ARRAY_TASK_ID}}"
shard=$((SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN + 1))/${SLURM_ARRAY_TASK_COUNT}
exec hubmirror bench --all --shard "$shard" "$@"
