"""A SLURM array job for a study: `sweep.sbatch` + `runs.txt`, one array task per run.

Each task runs `vloom sweep STUDY --run NAME`: the same code path as a local run, with the
shared data built once under a file lock by whichever task gets there first. Once the array
is done, `vloom sweep STUDY --report` writes the study report.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from vloom.ondisk import atomic_write_text
from vloom.sweep.spec import Study

SCRIPT, RUNS_LIST = "sweep.sbatch", "runs.txt"


def write_slurm(study: Study, names: list[str]) -> tuple[Path, Path]:
    """Write the array script and the runs list for `names` (the runs not yet done)."""
    out = study.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "slurm").mkdir(exist_ok=True)
    runs = out / RUNS_LIST
    atomic_write_text(runs, "".join(f"{n}\n" for n in names))
    sl = study.spec.slurm
    cpus = sl.cpus_per_task or study.spec.threads or 1
    throttle = f"%{sl.max_parallel}" if sl.max_parallel else ""
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={study.spec.name}",
        f"#SBATCH --array=0-{len(names) - 1}{throttle}",
        f"#SBATCH --cpus-per-task={cpus}",
        f"#SBATCH --time={sl.time}",
        f"#SBATCH --output={(out / 'slurm').resolve()}/%A_%a.out",
    ]
    if sl.partition:
        lines.append(f"#SBATCH --partition={sl.partition}")
    if sl.account:
        lines.append(f"#SBATCH --account={sl.account}")
    if sl.mem:
        lines.append(f"#SBATCH --mem={sl.mem}")
    if sl.gpus:
        lines.append(f"#SBATCH --gpus-per-task={sl.gpus}")
    lines += [f"#SBATCH {x}" for x in sl.extra]
    study_file = shlex.quote(str(study.source.resolve()))
    lines += [
        "set -euo pipefail",
        f"cd {shlex.quote(str(Path.cwd().resolve()))}",
        f'RUN=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {shlex.quote(str(runs.resolve()))})',
        f"export OMP_NUM_THREADS={cpus}",
        f"exec {shlex.quote(sys.executable)} -m vloom sweep {study_file} "
        f'--out {shlex.quote(str(out.resolve()))} --run "$RUN" --quiet',
    ]
    script = out / SCRIPT
    atomic_write_text(script, "\n".join(lines) + "\n")
    script.chmod(0o755)
    return script, runs
