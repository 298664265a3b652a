"""Dependency floors and checkpoints: no install pip allows may carry a known hole, an old
environment refuses to serve a network, and a hostile checkpoint runs no code."""

from __future__ import annotations

import os
import pickle
import shutil

import pytest
from packaging.requirements import Requirement

from conftest import demo_files
from mmsearch.cli import main
from mmsearch.config import ModelSpec
from mmsearch.encoder import DEMO_ARCH, Encoder, ModelLoadError
from mmsearch.floors import below_floor, requirements


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_installed_environment_meets_every_floor():
    names = {r.name.lower() for r in requirements()}
    assert {"torch", "gradio", "pillow", "starlette", "tqdm", "pillow-heif"} <= names
    assert below_floor() == []


def test_a_dependency_below_its_floor_is_named():
    problems = below_floor([Requirement("pillow>=999"), Requirement("no-such-package>=1")])
    assert len(problems) == 1 and problems[0].startswith("pillow ") and ">=999" in problems[0]


def test_an_old_environment_serves_only_this_computer(monkeypatch, capsys):
    import mmsearch.floors
    from mmsearch.cli.common import refuse_old_dependencies

    monkeypatch.setattr(mmsearch.floors, "below_floor",
                        lambda: ["gradio 6.0.0 is below mmsearch's safe floor (gradio>=6.20.0)"])
    refuse_old_dependencies("127.0.0.1")  # warns, serves
    assert "gradio 6.0.0 is below" in capsys.readouterr().err
    with pytest.raises(ValueError, match="refusing to serve on 0.0.0.0"):
        refuse_old_dependencies("0.0.0.0")
    code, _, err = run(capsys, "ui", "--host", "0.0.0.0", "--db", "/nonexistent/x.db")
    assert code == 1 and "refusing to serve on 0.0.0.0" in err.splitlines()[-1]


class _RunsCode:
    """Unpickling this calls os.system: what a hostile .pt file does."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile_checkpoint(tmp_path):
    import torch

    marker = tmp_path / "code-ran"
    path = tmp_path / "finetuned-clip.pt"
    torch.save({"state_dict": {"visual.proj": torch.zeros(2), "x": _RunsCode(str(marker))}},
               path)
    # the file really is hostile: plain unpickling runs its code
    with open(path, "rb") as f:
        assert f.read(2) == b"PK"  # torch's zip format, a pickle inside
    return path, marker


def test_a_hostile_checkpoint_is_refused_and_runs_nothing(tmp_path):
    path, marker = _hostile_checkpoint(tmp_path)
    with pytest.raises(ModelLoadError) as caught:
        Encoder(ModelSpec.parse(DEMO_ARCH, str(path))).warm()
    assert "refused the checkpoint" in str(caught.value) and str(path) in str(caught.value)
    assert not marker.exists()


def test_the_cli_refuses_it_in_one_line_and_leaves_no_index(tmp_path, capsys):
    path, marker = _hostile_checkpoint(tmp_path)
    folder = tmp_path / "pictures"
    folder.mkdir()
    shutil.copy(demo_files(1)[0], folder / "a.png")
    db = tmp_path / "index.db"
    code, _, err = run(capsys, "index", folder, "--db", db, "--model", DEMO_ARCH,
                       "--pretrained", path)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "refused the checkpoint" in err and str(path) in err
    assert not marker.exists() and not db.exists()


def test_the_marker_class_does_run_code_when_unpickled(tmp_path):
    """The check above means something: the same payload, unpickled plainly, runs."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_RunsCode(str(marker))))
    assert marker.exists()
