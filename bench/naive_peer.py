"""The naive peer for bench/serving.py: a minimal Flask endpoint that encodes each request on
its own with sentence-transformers and searches a flat FAISS index of the same replies.

Served by gunicorn as ``bench.naive_peer:app`` with NAIVE_ARTIFACT pointing at a model
version's folder (for its reply texts and embeddings).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import faiss
import numpy as np
from flask import Flask
from flask import request
from sentence_transformers import SentenceTransformer

from models.encoder import default_model_path

artifact = Path(os.environ["NAIVE_ARTIFACT"])
texts = json.loads((artifact / "bank.json").read_text())["texts"]
index = faiss.IndexFlatIP(384)
index.add(np.load(artifact / "bank_embeddings.npy"))
model = SentenceTransformer(str(default_model_path()), device="cpu", local_files_only=True)
app = Flask(__name__)


@app.post("/suggest")
def suggest() -> dict[str, list[str]]:
    message = (request.get_json(force=True) or {})["message"]
    vector = model.encode([message], normalize_embeddings=True, convert_to_numpy=True)
    _, ids = index.search(vector.astype(np.float32), 3)
    return {"suggestions": [texts[i] for i in ids[0]]}
