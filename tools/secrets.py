"""Masking of credentials in free text: passwords, tokens, keys, URL userinfo.

Exact spans come from our own patterns (connection-string and key=value passwords, Bearer/Basic
credentials, JWTs, AWS/OpenAI/GitHub/Slack/Google keys, private-key blocks, URL userinfo); Yelp's
detect-secrets plugins are a second net for the vendor token formats they know (Stripe, Slack,
Twilio, SendGrid, npm, PyPI, Discord, Azure storage...). A hit there masks the whole token around
it, because its plugins report a secret's value, not always all of it.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

SECRET = "<secret>"

_KEYS = (
    r"pwd|password|passwd|pass|passphrase|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?key(?:[_-]?id)?|"
    r"secret[_-]?(?:access[_-]?)?key|auth[_-]?token|access[_-]?token|refresh[_-]?token|session[_-]?token|"
    r"token|private[_-]?key|credentials?|sas|sig|signature"
)
# key=value / key: value, with an ODBC {braced;value}, a quoted value or a bare one up to ; , & or space
_KEY_VALUE = re.compile(
    rf"""(?=[pPsSaAcCtTrR])(?P<key>\b(?:{_KEYS})\b["']?\s*[=:]\s*)(?P<value>\{{[^}}]*\}}|"[^"]*"|'[^']*'|[^\s;,&'"<>]+)""",
    re.I,
)
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<user>[^/\s:@]*):(?P<password>[^/\s@]+)@", re.I
)
_AUTH_HEADER = re.compile(
    r"(?P<scheme>\b(?:bearer|basic|digest|token)\s+)(?P<value>[A-Za-z0-9._~+/=-]{8,})", re.I
)
_TOKENS = re.compile(
    r"""
    (?=[eAsgxG-])  # every format starts with one of these: fail fast everywhere else
    (?:\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*           # JWT
    |\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b  # AWS access key id
    |\bsk-(?:proj-|live-|test-|ant-)?[A-Za-z0-9_-]{16,}                # OpenAI / Stripe / Anthropic style
    |\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})      # GitHub
    |\bglpat-[A-Za-z0-9_-]{20,}                                          # GitLab
    |\bxox[abposr]-[A-Za-z0-9-]{10,}                                     # Slack
    |\bAIza[0-9A-Za-z_-]{35}\b                                           # Google API key
    |-----BEGIN[A-Z ]*PRIVATE KEY-----.*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z))
    """,
    re.VERBOSE | re.DOTALL,
)
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-./+=~]")
# The vendor formats detect-secrets knows are long runs of token characters: lines without one skip it.
_LONG_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=]{20,}")
# detect-secrets plugins that find things that are not credentials here (public IPs are evidence;
# the entropy and keyword detectors flag query hashes and log words).
_SKIP_PLUGINS = {"IPPublicDetector", "Base64HighEntropyString", "HexHighEntropyString", "KeywordDetector"}


@lru_cache(maxsize=1)
def _plugins() -> tuple[Any, ...]:
    try:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    except ImportError:  # optional second net
        log.warning("detect-secrets is not installed; only the built-in secret patterns apply")
        return ()
    classes: Any = get_mapping_from_secret_type_to_class().values()
    return tuple(c() for c in classes if c.__name__ not in _SKIP_PLUGINS)


def _expand(line: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and _TOKEN_CHARS.match(line[start - 1]):
        start -= 1
    while end < len(line) and _TOKEN_CHARS.match(line[end]):
        end += 1
    return start, end


def _library_net(text: str) -> str:
    if not _LONG_TOKEN.search(text):
        return text
    out = []
    for line in text.split("\n"):
        if not _LONG_TOKEN.search(line):
            out.append(line)
            continue
        spans: list[tuple[int, int]] = []
        for plugin in _plugins():
            try:
                hits = plugin.analyze_line(filename="evidence.txt", line=line, line_number=1)
            except Exception as exc:  # a plugin bug must not stop the redaction
                log.debug("%s failed: %s", type(plugin).__name__, exc)
                continue
            for hit in hits:
                value = hit.secret_value or ""
                pos = line.find(value) if len(value) >= 3 else -1
                if pos >= 0:
                    spans.append(_expand(line, pos, pos + len(value)))
        for start, end in sorted(spans, reverse=True):
            if SECRET not in line[start:end]:
                line = line[:start] + SECRET + line[end:]
        out.append(line)
    return "\n".join(out)


def _key_value(m: re.Match[str]) -> str:
    value = m.group("value")
    if value in (SECRET, "?", "", "''", '""') or value.startswith("<"):
        return m.group(0)
    return m.group("key") + SECRET


def redact_secrets(text: str) -> str:
    """Replace passwords, tokens and keys in ``text`` with ``<secret>`` (URL user names stay)."""
    if not text:
        return text
    text = _TOKENS.sub(SECRET, text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{SECRET}@", text)
    text = _AUTH_HEADER.sub(lambda m: m.group("scheme") + SECRET, text)
    text = _KEY_VALUE.sub(_key_value, text)
    return _library_net(text)
