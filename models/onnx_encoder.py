"""The sentence encoder's ONNX backends, run by ONNX Runtime and the `tokenizers` library
directly: no PyTorch and no sentence-transformers in the process that encodes.

What sentence-transformers does for this model, and nothing else: tokenize (the model's own
``tokenizer.json``, truncated at its maximum sequence length, padded to the longest text of the
batch), run the transformer, mean-pool the token embeddings over the attention mask, L2
normalise. On 405 chitchat texts, short, long (truncated) and emoji included, the vectors match
sentence-transformers' ONNX backend to cosine 0.9999999 for the int8 file
(tests/test_encoder_backends.py checks it on every run).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


class OnnxModelError(RuntimeError):
    """The exported folder is not a mean-pooled sentence-transformers model."""


class OnnxTextEncoder:
    """One ONNX Runtime session of an exported sentence-transformers folder.

    Args:
        folder: the export (models/onnx_export.py): ``tokenizer.json``, ``tokenizer_config.json``,
            ``config.json``, ``1_Pooling/config.json`` and the ONNX files.
        file_name: the ONNX file, relative to ``folder`` (float32 or int8).
        threads: ONNX Runtime's intra-op threads; 0 keeps its default (one per core).

    Raises:
        OnnxModelError: the folder's pooling is not mean pooling, or a file is missing.
    """

    def __init__(self, folder: Path, file_name: str, threads: int = 0) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        pooling = _json(folder / "1_Pooling" / "config.json")
        if (
            pooling.get("pooling_mode", "mean" if pooling.get("pooling_mode_mean_tokens") else "")
            != "mean"
        ):
            raise OnnxModelError(f"{folder}: only mean pooling is supported, not {pooling}")
        self.max_length = max_sequence_length(folder)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_length)
        pad_token = _json(folder / "tokenizer_config.json").get("pad_token", "[PAD]")
        pad_id = self.tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise OnnxModelError(f"{folder}: the tokenizer has no pad token {pad_token!r}")
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(folder / file_name), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def encode(
        self, texts: Sequence[str], batch_size: int, done: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """(len(texts), dim) float32, unit rows, in the order of ``texts``.

        Texts are batched longest first (as sentence-transformers does), so a batch pads to
        texts of similar length. ``done``, if given, is called with the number of texts of
        each batch once it is encoded (the caller's progress line)."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._batch([texts[i] for i in rows])
            if done is not None:
                done(len(rows))
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(texts)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed: dict[str, Any] = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": mask,
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        hidden = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def max_sequence_length(folder: Path) -> int:
    """Tokens a text is truncated to, as sentence-transformers chooses it: the folder's
    ``sentence_bert_config.json`` ``max_seq_length`` if it has one, else the tokenizer's
    ``model_max_length``, never above the transformer's ``max_position_embeddings``."""
    limit = int(_json(folder / "config.json").get("max_position_embeddings", 512))
    declared = _json(folder / "sentence_bert_config.json").get("max_seq_length")
    if declared is None:
        declared = _json(folder / "tokenizer_config.json").get("model_max_length", limit)
    return min(int(declared), limit)


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise OnnxModelError(f"{path} is missing: export the encoder again (delete its folder)")
    data: dict[str, Any] = json.loads(path.read_text())
    return data
