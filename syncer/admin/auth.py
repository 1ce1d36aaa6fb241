"""Who may operate the admin app (re-sync, roll back).

In Snowpark Container Services the ingress authenticates the visitor and passes their user name in
the ``Sf-Context-Current-User`` header; ``[admin] operators`` in the config lists who may act. With
no header at all (a local ``streamlit run``) nobody is an operator unless the config says
``allow_local_operator = true`` (the demo config does). A header that is present but empty, or sent
more than once, is refused outright: the ingress sends exactly one non-empty value, so anything else
did not come from it and must not fall back to "local".

Every action handler calls :func:`require_operator` itself: hiding a button on the page is a
courtesy, not the check. Refusals are written to the audit trail (``events``, kind ``refused``).
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from syncer._exceptions import NotAuthorizedError
from syncer.config import Config
from syncer.volume.audit import record_event

__all__ = ["USER_HEADER", "Identity", "NotAuthorizedError", "identify", "record_event", "require_operator"]

log = logging.getLogger("syncer")

#: the header SPCS's ingress sets to the authenticated Snowflake user
USER_HEADER = "Sf-Context-Current-User"


@dataclass(frozen=True)
class Identity:
    """Who is asking, and whether they may operate."""

    #: the name written to the audit trail: the SPCS user, ``local:<os user>``, or None (invalid header)
    user: str | None
    operator: bool
    #: one sentence saying why (not), shown on the page and in refusals
    reason: str
    #: True when no user header was sent (a local run)
    local: bool = False


def _header_values(headers: Any, name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive), whatever shape ``headers`` has.

    Accepts ``st.context.headers`` (has ``get_all``), a mapping (values may be lists), or an
    iterable of ``(key, value)`` pairs as an ASGI server sees them.
    """
    if headers is None:
        return []
    if hasattr(headers, "get_all"):
        return [str(v) for v in headers.get_all(name)]
    wanted = name.lower()
    items: Iterable[tuple[Any, Any]] = headers.items() if isinstance(headers, Mapping) else headers
    out: list[str] = []
    for key, value in items:
        k = key.decode("latin-1") if isinstance(key, bytes) else str(key)
        if k.lower() != wanted:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        out += [v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values]
    return out


def _local_name() -> str:
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "local"


def identify(cfg: Config, headers: Any) -> Identity:
    """Who sent these request headers, and are they an operator under ``cfg``?"""
    values = _header_values(headers, USER_HEADER)
    if not values:
        name = _local_name()
        if cfg.allow_local_operator:
            return Identity(
                name,
                True,
                f"local run (no {USER_HEADER} header): operator because the config sets [admin] allow_local_operator = true",
                local=True,
            )
        return Identity(
            name,
            False,
            f"local run (no {USER_HEADER} header): nobody is an operator unless the config sets "
            "[admin] allow_local_operator = true",
            local=True,
        )
    if len(values) > 1:
        return Identity(None, False, f"the {USER_HEADER} header was sent {len(values)} times; the request is refused")
    user = values[0].strip()
    if not user:
        return Identity(None, False, f"the {USER_HEADER} header is empty; the request is refused")
    allowed = {o.casefold() for o in cfg.operators}
    if user.casefold() in allowed:
        return Identity(user, True, f"{user} is listed in [admin] operators")
    return Identity(user, False, f"{user} is not listed in [admin] operators")


def require_operator(cfg: Config, headers: Any, action: str, **detail: Any) -> Identity:
    """Return the operator's identity, or record the refusal and raise :class:`NotAuthorizedError`."""
    who = identify(cfg, headers)
    if who.operator:
        return who
    record_event(cfg, "refused", user=who.user or "(invalid user header)", action=action, reason=who.reason, **detail)
    raise NotAuthorizedError(f"{action} refused: {who.reason}")
