"""``train --strategy multiworker``: two local workers (MultiWorkerMirroredStrategy over 127.0.0.1) train as one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_shared, prepared_orl

pytestmark = [needs_shared, pytest.mark.slow]  # TensorFlow training: minutes (make test-fast skips them)
tf_setup = pytest.importorskip("edgeface.training.tf_setup")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def weights(path: Path) -> list[np.ndarray]:
    from edgeface.training.train.keras_io import load_keras

    return load_keras(path).get_weights()


def test_two_workers_with_different_seeds_end_with_the_same_weights(tmp_path: Path):
    faces = prepared_orl(tmp_path / "orl", people=4)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    train = [sys.executable, "-m", "edgeface", "train", str(faces), "--arch", "tiny", "--epochs", "1", "--batch", "16"]
    workers = []
    for index in range(2):
        # different seeds: only the strategy (chief's initial weights broadcast, gradients all-reduced) can make
        # the two models equal
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen([*train, "--strategy", "multiworker", "--seed", str(7 * index), "--out",
                                         str(tmp_path / f"w{index}"), "--json"], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-2000:]
        assert json.loads(out)["epochs_run"] == 1
    first, second = weights(tmp_path / "w0" / "model.keras"), weights(tmp_path / "w1" / "model.keras")
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    # alone, the second worker's seed trains another model: the equality above came from the cluster
    alone = subprocess.run([*train, "--seed", "7", "--out", str(tmp_path / "alone")], capture_output=True, text=True,
                           timeout=600)
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert max(float(np.abs(a - b).max()) for a, b in zip(weights(tmp_path / "alone" / "model.keras"), second,
                                                                strict=True)) > 1e-3
