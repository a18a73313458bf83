"""launch/: the shell scripts parse, the JobSet manifest is valid YAML of the right shape, and
every launcher starts `emu-video train --distributed` with a config that exists."""

import pathlib
import re
import subprocess

import pytest
import yaml

from emu_jax.config import load_config

LAUNCH = pathlib.Path(__file__).resolve().parent.parent / "launch"
SCRIPTS = ["tpu_vm_pod.sh", "slurm_gpu.sbatch"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_parses_and_trains_distributed(name):
    path = LAUNCH / name
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    assert re.search(r"emu-video\"? train --distributed", text), name
    config = re.search(r"CONFIG=\$\{CONFIG:-([^}]+)\}", text).group(1)
    assert load_config(config).train.batch_size > 0


def test_tpu_script_requires_its_variables(tmp_path):
    # Without TPU_NAME the script must stop before calling gcloud (a stub that records calls).
    (tmp_path / "gcloud").write_text('#!/bin/sh\necho called >> "$(dirname "$0")/calls"\n')
    (tmp_path / "gcloud").chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "ZONE": "z", "PROJECT": "p"}
    r = subprocess.run(["bash", str(LAUNCH / "tpu_vm_pod.sh"), "setup"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "TPU_NAME" in r.stderr
    assert not (tmp_path / "calls").exists()


def test_tpu_script_calls_gcloud_on_all_workers(tmp_path):
    log = tmp_path / "calls"
    (tmp_path / "gcloud").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (tmp_path / "gcloud").chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "TPU_NAME": "t", "ZONE": "z", "PROJECT": "p", "WORKDIR": "/shared/run"}
    subprocess.run(["bash", str(LAUNCH / "tpu_vm_pod.sh"), "train", "--config.train.steps=5"], env=env, check=True)
    call = log.read_text()
    assert "tpus tpu-vm ssh t" in call and "--worker=all" in call
    assert "train --distributed" in call and "--workdir /shared/run" in call and "--config.train.steps=5" in call


def test_jobset_manifest():
    docs = list(yaml.safe_load_all((LAUNCH / "gke_jobset.yaml").read_text()))
    assert len(docs) == 1 and docs[0]["kind"] == "JobSet"
    job = docs[0]["spec"]["replicatedJobs"][0]["template"]["spec"]
    pod = job["template"]["spec"]
    topology = pod["nodeSelector"]["cloud.google.com/gke-tpu-topology"]
    chips_per_host = pod["containers"][0]["resources"]["limits"]["google.com/tpu"]
    chips = 1
    for d in topology.split("x"):
        chips *= int(d)
    assert job["parallelism"] == job["completions"] == chips // chips_per_host  # one pod per TPU host
    cmd = pod["containers"][0]["command"]
    assert cmd[:3] == ["emu-video", "train", "--distributed"]
    assert load_config(cmd[cmd.index("--config") + 1]).train.batch_size % chips == 0


def test_slurm_one_task_per_gpu():
    text = (LAUNCH / "slurm_gpu.sbatch").read_text()
    gpus = int(re.search(r"#SBATCH --gpus-per-node=(\d+)", text).group(1))
    tasks = int(re.search(r"#SBATCH --ntasks-per-node=(\d+)", text).group(1))
    assert gpus == tasks  # JAX's SLURM detection maps SLURM_LOCALID -> GPU
