# Sourced by tools/slurm_train.sh and tools/slurm_test.sh (not a command): the Slurm settings,
# read as MMDetection's / MMSegmentation's slurm scripts read them, `check_settings` and `run_srun`.
#   GPUS           tasks in all, one per GPU (default 8)
#   GPUS_PER_NODE  tasks per node (default 8)
#   CPUS_PER_TASK  CPU cores per task (default 5)
#   GRES           generic resource asked for on each node (default gpu:$GPUS_PER_NODE);
#                  GRES= (empty) on a partition without GPUs, where the tasks run on CPU (gloo)
#   SRUN_ARGS      more srun options, split at spaces (e.g. "--time=1-0 --exclude=node3")
#   PYTHON         the interpreter of the tasks (default python3)
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
GRES=${GRES-gpu:$GPUS_PER_NODE}
SRUN_ARGS=${SRUN_ARGS:-}
PYTHON=${PYTHON:-python3}

check_whole_number() {  # NAME MEANING: the variable NAME must be a whole number >= 1
  if ! [[ "${!1}" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: $1 ($2) must be a whole number >= 1, got '${!1}'; e.g. $1=8" >&2
    exit 2
  fi
}
check_settings() {  # PARTITION: the settings, srun, and the partition, before anything runs
  check_whole_number GPUS "the number of tasks in all, one per GPU"
  check_whole_number GPUS_PER_NODE "the number of tasks on each node"
  check_whole_number CPUS_PER_TASK "the CPU cores of each task"
  if ! command -v srun >/dev/null; then
    echo "error: srun not found: run this on a machine of a Slurm cluster (e.g. its login node)" >&2
    exit 1
  fi
  # srun would say this in two lines, after the checks of the config; a partition list that
  # cannot be read (no controller) is left to srun.
  local partitions
  if partitions=$(sinfo --all --noheader --format=%R 2>/dev/null) && [ -n "$partitions" ] &&
     ! grep -qxF -- "$1" <<< "$partitions"; then
    echo "error: the Slurm partition '$1' does not exist; this cluster has: $(echo $partitions)" >&2
    exit 1
  fi
}

run_srun() {  # PARTITION JOB_NAME COMMAND...: the tasks of the job, in the current directory
  local partition=$1 job_name=$2
  shift 2
  local srun_args=()
  read -r -a srun_args <<< "$SRUN_ARGS"
  exec srun --partition="$partition" --job-name="$job_name" ${GRES:+--gres="$GRES"} \
    --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 ${srun_args[@]+"${srun_args[@]}"} "$@"
}
