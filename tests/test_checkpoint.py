"""The checkpoint files themselves: atomic folders, the manifest, keep-K, and loading that never runs pickled code."""

import json
import os

import numpy as np
import pytest
import torch

from training.checkpoint import Checkpointer, CheckpointError, _sha256


def save(ckpt: Checkpointer, step: int, state=None, arrays=None):
    tmp, nbytes = ckpt.begin(step, state or {"step": torch.tensor(step)}, arrays or {"x": np.arange(step)})
    assert tmp.name.startswith(".tmp-")
    return ckpt.commit(tmp, step, {"metrics": step, "tb": {}}), nbytes


def test_save_load_round_trip_and_keep(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2)
    for step in (10, 20, 30):
        path, nbytes = save(ckpt, step, arrays={"replay.frames": np.full((step, 3), step, np.uint8)})
        assert nbytes == sum(f.stat().st_size for f in path.iterdir() if f.suffix in (".pt", ".npy"))
    assert [p.name for p in ckpt.complete()] == ["step_000000000030", "step_000000000020"]
    path, state, arrays, logger = ckpt.load_latest()
    assert path.name == "step_000000000030" and int(state["step"]) == 30 and logger["metrics"] == 30
    assert arrays["replay.frames"].shape == (30, 3) and (arrays["replay.frames"] == 30).all()
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(manifest["files"]) == {"state.pt", "replay.frames.npy", "logger.json"}


def test_a_killed_write_leaves_no_checkpoint_and_is_cleaned_up(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2)
    save(ckpt, 10)
    ckpt.begin(20, {"a": torch.ones(3)}, {})  # killed before commit
    assert [p.name for p in ckpt.complete()] == ["step_000000000010"]
    ckpt.clean_partial()
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_a_damaged_newest_checkpoint_is_reported_and_the_previous_one_used(tmp_path, capsys, damage):
    ckpt = Checkpointer(tmp_path, keep=3)
    save(ckpt, 10)
    newest, _ = save(ckpt, 20)
    f = newest / "state.pt"
    if damage == "truncate":
        os.truncate(f, f.stat().st_size - 7)
    elif damage == "flip":
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0xFF
        f.write_bytes(bytes(data))
    else:
        f.unlink()
    path, state, _, _ = ckpt.load_latest()
    assert path.name == "step_000000000010" and int(state["step"]) == 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: checkpoint {newest} is unusable (state.pt")
    assert not newest.exists() and len(list((tmp_path / "unusable").iterdir())) == 1


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    """A state.pt carrying a pickled call to os.system, with a manifest that matches it: only weights_only
    loading stands between it and the shell."""
    ckpt = Checkpointer(tmp_path / "ckpt", keep=3)
    save(ckpt, 10)
    Exploit.marker = tmp_path / "pwned"
    bad, _ = save(ckpt, 20, state={"step": torch.tensor(20), "payload": Exploit()})
    with pytest.raises(CheckpointError, match="UnpicklingError"):
        ckpt.load(bad)
    path, _, _, _ = ckpt.load_latest()
    assert path.name == "step_000000000010"
    assert not Exploit.marker.exists()
    assert "unusable" in capsys.readouterr().err


def test_arrays_load_without_pickle(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2)
    path, _ = save(ckpt, 10)
    np.save(path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["x.npy"] = {"bytes": (path / "x.npy").stat().st_size, "sha256": _sha256(path / "x.npy")}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="Python objects|allow_pickle"):
        ckpt.load(path)


def test_when_no_checkpoint_loads_the_run_is_not_restarted(tmp_path, capsys):
    ckpt = Checkpointer(tmp_path, keep=2)
    path, _ = save(ckpt, 10)
    os.truncate(path / "state.pt", 10)
    with pytest.raises(CheckpointError, match="none of the 1 checkpoints"):
        ckpt.load_latest()
    assert "no other checkpoint is left" in capsys.readouterr().err


def test_a_second_checkpoint_at_the_same_step_replaces_the_first(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2)
    save(ckpt, 10, state={"v": torch.tensor(1)})
    save(ckpt, 10, state={"v": torch.tensor(2)})
    path, state, _, _ = ckpt.load_latest()
    assert path.name == "step_000000000010" and int(state["v"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000000000010"]


def test_a_replaced_checkpoint_is_put_back_if_its_replacement_never_arrived(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2)
    path, _ = save(ckpt, 10)
    os.rename(path, tmp_path / ".old-step_000000000010")  # killed between the two renames of commit()
    ckpt.clean_partial()
    assert [p.name for p in ckpt.complete()] == ["step_000000000010"] and ckpt.load_latest() is not None


def test_finish_keeps_the_final_checkpoint_without_replay(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=3)
    for step in (10, 20):
        save(ckpt, step, arrays={"replay.frames": np.zeros((step, 2)), "other": np.ones(3)})
    ckpt.finish()
    ckpt.finish()  # idempotent
    [path] = ckpt.complete()
    _, arrays, _ = ckpt.load(path)
    assert path.name == "step_000000000020" and set(arrays) == {"other"}
    assert not (path / "replay.frames.npy").exists()
