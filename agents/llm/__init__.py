"""Model provider layer: build_model(spec, cfg) -> ModelHandle with structured() and text()."""

from agents.llm.config import QWEN_SHA256, ModelConfig
from agents.llm.gguf import BUNDLED_GGUF_NAME, GGUFIntegrityError, ensure_local_gguf
from agents.llm.handle import ModelHandle, Usage
from agents.llm.providers import SPEC_HELP, build_model, default_model_spec, parse_spec

__all__ = [
    "BUNDLED_GGUF_NAME",
    "QWEN_SHA256",
    "SPEC_HELP",
    "GGUFIntegrityError",
    "ModelConfig",
    "ModelHandle",
    "Usage",
    "build_model",
    "default_model_spec",
    "ensure_local_gguf",
    "parse_spec",
]
