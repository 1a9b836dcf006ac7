"""A scripted chat model: answers each structured request by schema name, and text from a list."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field


class ScriptedChatModel(BaseChatModel):
    """Scripted exactly: `structured[name]` is the queue of tool-call args for schema `name`
    (forced tool choice), `texts` the queue of free-text answers. Every prompt is recorded."""

    structured: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    texts: list[str] = Field(default_factory=list)
    seen: list[tuple[str | None, list[BaseMessage]]] = Field(default_factory=list)
    bound: str | None = None

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        name = tool_choice if isinstance(tool_choice, str) else getattr(tools[0], "__name__", None)
        return self.model_copy(update={"bound": name})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.seen.append((self.bound, list(messages)))
        if self.bound is not None:
            queue = self.structured.get(self.bound) or []
            args = queue.pop(0) if queue else {}
            msg = AIMessage(
                content="",
                tool_calls=[{"name": self.bound, "args": args, "id": f"call_{len(self.seen)}"}],
                usage_metadata={"input_tokens": 100, "output_tokens": 10, "total_tokens": 110},
            )
        else:
            text = self.texts.pop(0) if self.texts else ""
            msg = AIMessage(
                content=text, usage_metadata={"input_tokens": 200, "output_tokens": 30, "total_tokens": 230}
            )
        return ChatResult(generations=[ChatGeneration(message=msg)])
