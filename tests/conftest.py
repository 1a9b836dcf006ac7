"""Shared fixtures: scenario paths, the replay sources and a scripted chat model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT.parent / "shared" / "scenarios" / "examples"
EXTERNAL = ROOT.parent / "shared" / "external" / "opensre-rds-postgres"
OWN_SCENARIOS = ROOT / "evals" / "scenarios"


@pytest.fixture(scope="session")
def knowledge_factory():  # type: ignore[no-untyped-def]
    """Real embedded Chroma + the packaged MiniLM model, one collection per world."""
    from tools.knowledge.store import ChromaKnowledge

    return lambda world: ChromaKnowledge(world.past_incidents)
