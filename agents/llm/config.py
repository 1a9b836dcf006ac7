"""Model provider settings (a section of the process settings; no environment reads here)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


class ModelConfig(BaseModel):
    """How to reach each provider. The provider itself is chosen by a model spec string:
    ``none`` | ``local`` | ``ollama:NAME`` | ``openai:NAME``."""

    local_gguf_path: Path | None = Field(
        default=None, description="A GGUF file you trust; default: the bundled Qwen2.5-Coder-0.5B-Instruct"
    )
    local_gguf_sha256: str | None = Field(
        default=None, description="sha256 the GGUF must have; default: the bundled model's digest"
    )
    cache_dir: Path = Field(default=Path("var/models"), description="where the joined GGUF is cached")
    trust_digest_sidecar: bool = Field(
        default=False,
        description="reuse the sha256 recorded next to the cached GGUF (same path, size and mtime) "
        "instead of re-hashing it once per process",
    )
    n_ctx: int = Field(default=4096, ge=512, le=32768)
    n_threads: int | None = Field(default=None, ge=1, le=64)
    max_tokens: int = Field(default=200, ge=16, le=4096)
    temperature: float = Field(default=0.1, ge=0.0, le=2.0)
    ollama_base_url: str = "http://127.0.0.1:11434"
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: str | None = Field(default=None, repr=False)
    request_timeout_s: float = Field(default=60.0, gt=0, le=600)
    local_startup_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=600,
        description="how long the local model child may take to load and smoke-test",
    )
    local_extra_buffers: bool = Field(
        default=False,
        description="let llama.cpp use its extra CPU buffer types (AMX, repacked weights); off because "
        "the AMX kernel crashes on some Xeons",
    )
    probe_timeout_s: float = Field(default=2.0, gt=0, le=30)
