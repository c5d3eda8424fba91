"""emotion-circuits: find and control emotion circuits in LLMs with TransformerLens 4.

Entry points: :func:`load_model` (any supported HF model, or ``"toy"``), :func:`load_sev` (the SEV
dataset). See the README for the analyses built on them.
"""

from circuits.emotions import EMOTIONS, LABELS, NEUTRAL, VALENCES, UnknownEmotionError
from circuits.model import ArchInfo, HookNames, ModelHandle, ModelLoadError, load_model
from circuits.sev import PromptSettings, SEVDataset, SEVFormatError, SEVItem, load_sev

__version__ = "0.1.0"
__all__ = [
    "EMOTIONS", "LABELS", "NEUTRAL", "VALENCES", "UnknownEmotionError",
    "ArchInfo", "HookNames", "ModelHandle", "ModelLoadError", "load_model",
    "PromptSettings", "SEVDataset", "SEVFormatError", "SEVItem", "load_sev",
]
