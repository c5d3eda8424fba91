"""The project's toy emotion model: corpus, tokenizer, training and evaluation.

The trained model ships in ``circuits/toy/model/`` (a normal HF directory); ``load_model("toy")``
loads it.
"""

from pathlib import Path

TOY_MODEL_DIR = Path(__file__).resolve().parent / "model"
