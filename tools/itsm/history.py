"""Resolved tickets with their notes: what the ServiceNow and Jira clients hand the knowledge base."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class TicketNote(BaseModel):
    """A work note (ServiceNow) or comment (Jira) on a ticket."""

    text: str
    at: datetime | None = None
    by: str | None = None


class ResolvedTicket(BaseModel):
    """A resolved incident or issue, as its ITSM system records it."""

    system: str  # servicenow | jira
    number: str  # INC0012345, OPS-123
    title: str
    description: str = ""
    resolution: str = ""  # close notes (ServiceNow); resolution name and last comment (Jira)
    close_code: str | None = None  # ServiceNow close code, Jira resolution name
    cis: list[str] = Field(default_factory=list)  # cmdb_ci, Jira components
    services: list[str] = Field(default_factory=list)  # business_service
    labels: list[str] = Field(default_factory=list)  # category, Jira labels
    priority: str | None = None
    opened_at: datetime | None = None
    resolved_at: datetime | None = None
    updated_at: datetime | None = None
    notes: list[TicketNote] = Field(default_factory=list)
    url: str  # the record in the ITSM system's UI
