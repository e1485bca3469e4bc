"""The encoder's three backends: same model, what each gives, models tied to their kind, and
vectors that do not depend on the batch a text is encoded in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.db import Database
from models import onnx_export
from models.adapter import AdapterConfig
from models.artifact import MANIFEST
from models.artifact import ArtifactError
from models.artifact import load_model
from models.artifact import write_model
from models.encoder import Encoder
from models.encoder import EncoderError
from models.encoder import default_model_path
from models.onnx_encoder import OnnxTextEncoder
from models.onnx_export import INT8_FILE
from models.onnx_export import ONNX_FILE
from models.onnx_export import exported_model
from models.onnx_export import int8_recipe
from models.registry import artifact_dir
from models.registry import production
from models.reply_rules import ResponseSetConfig
from models.suggester import SuggestionModel
from models.training import TrainingConfig
from models.training import TrainingExample
from models.training import train_model
from tests.helpers import LIBRARY_LINES
from worker.settings import Settings

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
    assert encoder.key == f"{torch_encoder.key}:{int8_recipe()}"


@pytest.mark.parametrize("file_name", [ONNX_FILE, INT8_FILE])
def test_onnx_runtime_alone_gives_sentence_transformers_vectors(
    encoder: Encoder, file_name: str
) -> None:
    """models/onnx_encoder.py against sentence-transformers' own ONNX backend on the same
    file: short, long (truncated at 256 tokens), emoji, whitespace, in batches of mixed
    lengths."""
    from sentence_transformers import SentenceTransformer

    from core.demo import chatterbot_rows

    folder = exported_model(encoder.path)
    texts = [*TEXTS, "word " * 300, "hello " * 130, "ok", "¿Qué tal? 😀", " "]
    texts += [example.message for _, example in chatterbot_rows()[:120]]
    reference = SentenceTransformer(
        str(folder),
        backend="onnx",
        device="cpu",
        local_files_only=True,
        model_kwargs={"file_name": file_name, "provider": "CPUExecutionProvider"},
    ).encode(texts, batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
    ours = OnnxTextEncoder(folder, file_name).encode(texts, batch_size=16)
    assert ours.shape == reference.shape == (len(texts), 384)
    assert (ours * reference).sum(axis=1).min() > 0.99999


@pytest.mark.integration  # a new ONNX export or another interpreter
def test_a_web_process_imports_no_pytorch(data_dir: Path) -> None:
    """A web process loads the trained model and answers suggestions with the int8 encoder
    and the adapter in numpy: PyTorch (about 1 s and 100+ MB) stays out of it."""
    code = (
        "import json, sys\n"
        "from core.keys import create_key\n"
        "from core.schema import Role\n"
        "from webapp import create_app\n"
        "app = create_app()\n"
        "with app.extensions['replyguard'].db.session() as session:\n"
        "    token, _ = create_key(session, 'probe', Role.CLIENT, 'tester')\n"
        "answer = app.test_client().post('/v1/suggestions', json={'message': 'hello there'},\n"
        "    headers={'Authorization': 'Bearer ' + token})\n"
        "print(json.dumps([answer.status_code, len(answer.json['suggestions']),\n"
        "    sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules)]))"
    )
    env = dict(os.environ, REPLYGUARD_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    status, suggestions, heavy = json.loads(result.stdout.strip().splitlines()[-1])
    assert (status, heavy) == (200, [])
    assert suggestions > 0


def test_the_export_is_made_once_and_reused(encoder: Encoder) -> None:
    folder = exported_model(encoder.path)
    made = (folder / INT8_FILE).stat().st_mtime_ns
    assert exported_model(encoder.path) == folder
    assert (folder / INT8_FILE).stat().st_mtime_ns == made


def _small_model(encoder: Encoder) -> SuggestionModel:
    examples = [TrainingExample(m, f"reply to {m}", "chat") for m in TEXTS] * 3
    model, _ = train_model(
        encoder,
        examples,
        config=TrainingConfig(
            adapter=AdapterConfig(epochs=1),
            response_set=ResponseSetConfig(min_support=1),
            target_coverage=1.0,
        ),
    )
    return model


def test_a_model_is_refused_by_an_encoder_of_the_other_kind(
    tmp_path: Path, encoder: Encoder, torch_encoder: Encoder
) -> None:
    model = _small_model(encoder)
    checksum = write_model(model, tmp_path / "v1", {})
    with pytest.raises(ArtifactError, match="REPLYGUARD_ENCODER__BACKEND"):
        load_model(tmp_path / "v1", torch_encoder, checksum)
    loaded, _ = load_model(tmp_path / "v1", encoder, checksum)
    assert np.allclose(loaded.bank_embeddings, model.bank_embeddings)


def test_an_unknown_backend_is_refused_with_the_choices() -> None:
    with pytest.raises(EncoderError, match="torch, onnx, onnx-int8"):
        Encoder(backend="tensorrt")


@pytest.mark.integration  # a new ONNX export or another interpreter
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
        # The libraries' announcements of the export (sentence-transformers' "No 'model.onnx'
        # found ... Exporting", transformers' `torch_dtype` deprecation) stay off the console.
        console = (out + err).decode(errors="replace")
        assert not [line for line in LIBRARY_LINES if line in console], console[-2000:]
    exports = list((tmp_path / "replyguard" / "encoders").iterdir())
    assert len(exports) == 1, exports  # no staging folder left behind
    assert (exports[0] / INT8_FILE).is_file()


@pytest.mark.integration  # a new ONNX export or another interpreter
def test_an_export_in_this_process_is_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exporter's own deprecation and resource warnings stay inside the export (this
    suite turns warnings into errors, as a strict deployment might)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # The quantiser's scratch files must not land in the directory the service started in.
    started_in = tmp_path / "cwd"
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    folder = exported_model(default_model_path())
    assert folder.parent == tmp_path / "cache" / "replyguard" / "encoders"
    assert (folder / ONNX_FILE).is_file() and (folder / INT8_FILE).is_file()
    assert list(started_in.iterdir()) == []


def _model_folder(folder: Path, mtime_ns: int) -> Path:
    """A small model-like folder (nested files, one binary), every file dated ``mtime_ns``."""
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden_size": 384}')
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    for path in folder.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(mtime_ns, mtime_ns))
    return folder


def test_the_export_is_keyed_on_the_model_files_not_where_they_are_installed(
    tmp_path: Path,
) -> None:
    """Every virtualenv installs the bundled model at its own path with new mtimes; one export
    serves them all. A change to any file's content, or a renamed file, is another model."""
    first = _model_folder(tmp_path / "venv-a" / "model", 1_600_000_000_000_000_000)
    second = _model_folder(tmp_path / "venv-b" / "site-packages" / "model", 1_700_000_000 * 10**9)
    assert onnx_export._fingerprint(first) == onnx_export._fingerprint(second)
    assert onnx_export.model_digest(first) == onnx_export.model_digest(second)

    weights = second / "model.safetensors"
    stat = weights.stat()
    changed = bytearray(weights.read_bytes())
    changed[100] ^= 1
    weights.write_bytes(bytes(changed))
    # Same size and same mtime: only the content tells it apart.
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size
    assert onnx_export._fingerprint(second) != onnx_export._fingerprint(first)

    third = _model_folder(tmp_path / "venv-c" / "model", 1_600_000_000_000_000_000)
    (third / "config.json").rename(third / "config2.json")
    assert onnx_export._fingerprint(third) != onnx_export._fingerprint(first)


def test_the_export_key_names_the_exporting_libraries_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _model_folder(tmp_path / "model", 1_600_000_000_000_000_000)
    before = onnx_export._fingerprint(folder)
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "99.0" if name == "transformers" else real(name),
    )
    assert onnx_export._fingerprint(folder) != before


def test_exports_live_under_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert onnx_export.exports_root() == tmp_path / "cache" / "replyguard" / "encoders"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home_cache = tmp_path / "home" / ".cache" / "replyguard" / "encoders"
    # The XDG specification: an unset, empty or relative value means ~/.cache.
    for value in ("", "relative/cache"):
        monkeypatch.setenv("XDG_CACHE_HOME", value)
        assert onnx_export.exports_root() == home_cache
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert onnx_export.exports_root() == home_cache


def test_an_unwritable_export_folder_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_folder))
    with pytest.raises(EncoderError, match="set XDG_CACHE_HOME to a writable folder"):
        Encoder(backend="onnx-int8")


# Messages of 1 to 60 words: batched together, most of them are padded.
MIXED = [
    "hi",
    "Tell me a joke",
    "What is the difference between a compiler and an interpreter, and which one runs Python?",
    "I feel sad today",
    "my order number 48213 never arrived and nobody answers the phone " * 5,
    "Do you like football?",
    "ok thanks",
    "Can you recommend a good science fiction book for a long flight next week?",
]


@pytest.fixture(scope="module")
def uncached() -> Encoder:
    """The default backend with no embedding cache, so that every call runs the model."""
    return Encoder(cache_size=0)


def test_a_text_gets_the_same_vector_alone_and_in_any_batch(uncached: Encoder) -> None:
    """Dynamic int8 quantisation took its scales from the whole padded batch, so a text's
    vector moved with its neighbours (cosine down to 0.96); static scales do not."""
    assert uncached.backend == "onnx-int8"
    alone = np.stack([uncached.encode([text])[0] for text in MIXED])
    together = uncached.encode(MIXED)
    reversed_ = uncached.encode(MIXED[::-1])[::-1]
    padded = np.stack([uncached.encode([text, MIXED[4]])[0] for text in MIXED])
    for batched in (together, reversed_, padded):
        assert (alone * batched).sum(axis=1).min() >= 0.99999


@pytest.fixture
def production_model(db: Database, settings: Settings, uncached: Encoder) -> SuggestionModel:
    """The trained demo baseline, served through the uncached default encoder."""
    with db.session() as session:
        row = production(session)
        assert row is not None
    model, _ = load_model(artifact_dir(settings, row), uncached, row.checksum)
    return model


def test_a_messages_suggestions_do_not_depend_on_the_other_messages_in_its_batch(
    production_model: SuggestionModel,
) -> None:
    messages = [*MIXED, *(f"{text} please" for text in MIXED)]
    alone = [production_model.suggest_many([m], k=3)[0] for m in messages]
    together = production_model.suggest_many(messages, k=3)
    assert [[s.reply_id for s in row] for row in together] == [
        [s.reply_id for s in row] for row in alone
    ]
    for got, want in zip(together, alone, strict=True):
        assert [s.score for s in got] == pytest.approx([s.score for s in want], abs=1e-5)


@pytest.fixture
def fresh_recipe() -> Iterator[None]:
    """Forget the memoised recipe before and after a test that changes it."""
    onnx_export.calibration_texts.cache_clear()
    onnx_export.int8_recipe.cache_clear()
    yield
    onnx_export.calibration_texts.cache_clear()
    onnx_export.int8_recipe.cache_clear()


@pytest.mark.integration  # a new ONNX export or another interpreter
def test_a_changed_int8_recipe_gets_a_new_key_and_a_new_export(
    fresh_recipe: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = default_model_path()
    recipe, fingerprint = int8_recipe(), onnx_export._fingerprint(source)
    monkeypatch.setattr(onnx_export, "CALIBRATION_STRIDE", onnx_export.CALIBRATION_STRIDE + 1)
    onnx_export.calibration_texts.cache_clear()
    onnx_export.int8_recipe.cache_clear()
    assert int8_recipe() != recipe
    assert onnx_export._fingerprint(source) != fingerprint


def test_a_model_trained_on_the_dynamic_int8_export_is_refused(
    tmp_path: Path, encoder: Encoder
) -> None:
    """Models made before the static recipe carry the key ':int8'; their vectors would not
    match this encoder's, so loading one must fail, not serve mixed vectors."""
    model = _small_model(encoder)
    write_model(model, tmp_path / "v1", {})
    manifest_path = tmp_path / "v1" / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["encoder"]["name"] = encoder.key.rsplit(":", 1)[0] + ":int8"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"trained with encoder \S+:int8,"):
        load_model(tmp_path / "v1", encoder)
