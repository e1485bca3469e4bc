"""The encoder's three backends: same model, what each gives, and models tied to their kind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.adapter import AdapterConfig
from models.artifact import ArtifactError
from models.artifact import load_model
from models.artifact import write_model
from models.encoder import Encoder
from models.encoder import EncoderError
from models.encoder import default_model_path
from models.onnx_export import ONNX_FILE
from models.onnx_export import exported_model
from models.onnx_export import int8_file
from models.response_set import Curation
from models.response_set import ResponseSetConfig
from models.suggester import RetrievalConfig
from models.training import TrainingExample
from models.training import train_model

TEXTS = [
    "are we still on for lunch today?",
    "my laptop will not turn on",
    "who won the game last night",
    "thanks a lot for your help!",
]


@pytest.fixture(scope="module")
def torch_encoder() -> Encoder:
    return Encoder(backend="torch", cache_size=0)


def test_onnx_gives_pytorchs_vectors_and_int8_stays_close(
    torch_encoder: Encoder, encoder: Encoder
) -> None:
    reference = torch_encoder.encode(TEXTS)
    onnx = Encoder(backend="onnx", cache_size=0)
    assert (onnx.encode(TEXTS) * reference).sum(axis=1).min() > 0.9999
    assert onnx.key == torch_encoder.key
    assert encoder.backend == "onnx-int8"  # the default
    cosine = (encoder.encode(TEXTS) * reference).sum(axis=1)
    assert cosine.min() > 0.95
    assert cosine.max() < 0.99999, "int8 vectors are expected to differ a little"
    assert encoder.key == torch_encoder.key + ":int8"


def test_the_export_is_made_once_and_reused(encoder: Encoder) -> None:
    folder = exported_model(encoder.path)
    made = (folder / int8_file()).stat().st_mtime_ns
    assert exported_model(encoder.path) == folder
    assert (folder / int8_file()).stat().st_mtime_ns == made


def test_a_model_is_refused_by_an_encoder_of_the_other_kind(
    tmp_path: Path, encoder: Encoder, torch_encoder: Encoder
) -> None:
    examples = [TrainingExample(m, f"reply to {m}", "chat") for m in TEXTS] * 3
    model, _ = train_model(
        encoder,
        examples,
        AdapterConfig(epochs=1),
        RetrievalConfig(),
        ResponseSetConfig(min_support=1),
        Curation(),
        target_coverage=1.0,
    )
    checksum = write_model(model, tmp_path / "v1", {})
    with pytest.raises(ArtifactError, match="REPLYGUARD_ENCODER_BACKEND"):
        load_model(tmp_path / "v1", torch_encoder, checksum)
    loaded, _ = load_model(tmp_path / "v1", encoder, checksum)
    assert np.allclose(loaded.bank_embeddings, model.bank_embeddings)


def test_an_unknown_backend_is_refused_with_the_choices() -> None:
    with pytest.raises(EncoderError, match="torch, onnx, onnx-int8"):
        Encoder(backend="tensorrt")


def test_two_processes_exporting_on_a_fresh_machine_leave_one_export(tmp_path: Path) -> None:
    """What the first start on a new machine does: two processes (say a worker and a web
    server) both find no export, both make one, one of them keeps its rename."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), HF_HUB_OFFLINE="1")
    code = "from models.encoder import Encoder; print(Encoder().encode(['hi']).shape)"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode(errors="replace")[-2000:]
        assert b"(1, 384)" in out
    exports = list((tmp_path / "replyguard" / "encoders").iterdir())
    assert len(exports) == 1, exports  # no staging folder left behind
    assert (exports[0] / int8_file()).is_file()


def test_an_export_in_this_process_is_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exporter's own deprecation and resource warnings stay inside the export (this
    suite turns warnings into errors, as a strict deployment might)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = exported_model(default_model_path())
    assert folder.parent == tmp_path / "replyguard" / "encoders"
    assert (folder / ONNX_FILE).is_file() and (folder / int8_file()).is_file()


def test_an_unwritable_export_folder_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_folder))
    with pytest.raises(EncoderError, match="set XDG_CACHE_HOME to a writable folder"):
        Encoder(backend="onnx-int8")
