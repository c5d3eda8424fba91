"""The project's toy emotion model: corpus, tokenizer, training and evaluation.

The trained model ships in ``circuits/toy/model/`` (a normal HF directory); ``load_model("toy")``
loads it.
"""

from circuits.core.resources import data_dir

TOY_MODEL_DIR = data_dir("toy_model")
