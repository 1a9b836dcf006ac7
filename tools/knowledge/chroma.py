"""Chroma clients: a server over HTTP, a persistent folder, or in memory; telemetry always off."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import chromadb
from chromadb.api import ClientAPI
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import NotFoundError

log = logging.getLogger(__name__)


class ChromaLocation(Protocol):
    """Where Chroma keeps its data (the `knowledge` settings section has this shape)."""

    @property
    def chroma_path(self) -> Path | None: ...

    @property
    def chroma_url(self) -> str | None: ...


def knowledge_client(config: ChromaLocation | None = None) -> ClientAPI:
    """A Chroma client: an HTTP server (`chroma_url`), a folder (`chroma_path`), or in memory."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if config is not None and config.chroma_url:
        url = urlparse(config.chroma_url)
        ssl = url.scheme == "https"
        return chromadb.HttpClient(
            host=url.hostname or "localhost",
            port=url.port or (443 if ssl else 8000),
            ssl=ssl,
            settings=chroma_settings,
        )
    if config is not None and config.chroma_path:
        return chromadb.PersistentClient(path=str(config.chroma_path), settings=chroma_settings)
    return chromadb.EphemeralClient(settings=chroma_settings)


def drop_collection(client: ClientAPI, name: str) -> None:
    try:
        client.delete_collection(name)
    except (NotFoundError, ValueError) as exc:
        log.debug("collection %s already gone: %s", name, exc)
