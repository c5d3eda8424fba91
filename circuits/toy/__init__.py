"""The project's toy emotion model: corpus, tokenizer, training and evaluation.

The trained model ships in ``circuits/toy/model/`` (a normal HF directory, shipped data
``toy_model`` of :mod:`circuits.core.resources`); ``load_model("toy")`` loads it without importing
this package. ``emocircuits toy train | evaluate`` is :mod:`circuits.cli.toy`.
"""

from circuits.core.resources import data_dir

TOY_MODEL_DIR = data_dir("toy_model")
