"""The NExT-OMNI model: OmniConfig, OmniModel, sequences of mixed-modality positions."""

from nextomni.model.config import AUDIO, IMAGE, TEXT, OmniConfig
from nextomni.model.modeling import OmniModel

__all__ = ["OmniConfig", "OmniModel", "TEXT", "IMAGE", "AUDIO"]
