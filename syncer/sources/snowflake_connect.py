"""How the Snowflake source connects, in this order:

1. **Inside SPCS** (the OAuth token file ``/snowflake/session/token`` exists): OAuth with that file
   and ``SNOWFLAKE_HOST``, ``SNOWFLAKE_ACCOUNT``, ``SNOWFLAKE_DATABASE``, ``SNOWFLAKE_SCHEMA`` from
   the environment. SPCS injects no warehouse: ``[source] warehouse``, else ``$SNOWFLAKE_WAREHOUSE``,
   else the service's ``QUERY_WAREHOUSE``. The connector is given the token file's *path*, so the
   token is read at each (re)connect (SPCS refreshes it) and never sits in our parameters.
2. **A named connection** from ``connections.toml``: ``[source] connection_name``, else
   ``$SNOWFLAKE_DEFAULT_CONNECTION_NAME``, else a connection called ``default`` when the config
   names no account.
3. **Explicit config**: ``[source] account``/``user``/``authenticator``/``private_key_file`` (or
   ``$SNOWFLAKE_ACCOUNT``/``$SNOWFLAKE_USER``); a password only from ``$SNOWFLAKE_PASSWORD``, a key
   passphrase only from ``$SNOWFLAKE_PRIVATE_KEY_PASSPHRASE``.

``[source] role``/``warehouse``/``database``/``schema`` override what the chosen method brings.
:func:`connection_plan` only computes the parameters (no network), so tests can check them;
:func:`open_session` is the one place that connects. No secret appears in :meth:`ConnectionPlan.describe`,
in a log line or in an error message (:func:`scrub`).
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncer._exceptions import SourceUnavailableError
from syncer._log import SPCS_TOKEN_PATH, register_secret, scrub
from syncer.config import SourceConfig

__all__ = [
    "SPCS_TOKEN_PATH",
    "ConnectionPlan",
    "connection_plan",
    "connections_file",
    "factory_injected",
    "open_session",
    "session_factory",
    "use_session_factory",
]

#: parameter names whose values are secrets: never logged, never in describe() or errors
SECRET_PARAMS = frozenset({"password", "token", "private_key", "private_key_file_pwd", "passcode", "oauth_token"})

# Every session: keep a long export's session alive; NUMBER(p,s) as exact decimals in Arrow (the
# connector's default turns them into float64); UTC for LTZ values; a tag to find our queries.
_COMMON: dict[str, Any] = {
    "client_session_keep_alive": True,
    "arrow_number_to_decimal": True,
    "session_parameters": {"TIMEZONE": "UTC", "QUERY_TAG": "volume-data-sync"},
}


@dataclass(frozen=True)
class ConnectionPlan:
    """The parameters for ``Session.builder.configs(...)`` and where they came from."""

    method: str  # "spcs" | "connections.toml" | "config"
    params: dict[str, Any] = field(repr=False)  # may hold a secret: never log it
    origin: str  # the token file, the connections.toml section, or the config

    def describe(self) -> dict[str, Any]:
        """What may be shown and recorded: the method and the non-secret parameters."""
        keep = ("account", "host", "user", "role", "warehouse", "database", "schema", "authenticator", "private_key_file")
        out: dict[str, Any] = {"method": self.method, "origin": self.origin}
        for key in keep:
            if self.params.get(key):
                out[key] = str(self.params[key])
        if self.params.get("token_file_path"):
            out["token_file"] = str(self.params["token_file_path"])
        return out

    def __repr__(self) -> str:  # the dataclass repr would print params (secrets)
        return f"ConnectionPlan(method={self.method!r}, origin={self.origin!r})"


def connections_file(environ: Mapping[str, str], home: Path | None = None) -> Path:
    """``connections.toml`` as the Snowflake connector finds it (``$SNOWFLAKE_HOME``, ``~/.snowflake``, XDG)."""
    home = home if home is not None else Path(environ.get("HOME") or Path.home())
    if environ.get("SNOWFLAKE_HOME"):
        return Path(environ["SNOWFLAKE_HOME"]).expanduser() / "connections.toml"
    legacy = home / ".snowflake" / "connections.toml"
    if legacy.exists():
        return legacy
    xdg = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    return xdg / "snowflake" / "connections.toml"


def connection_plan(
    cfg: SourceConfig,
    *,
    environ: Mapping[str, str] | None = None,
    token_path: Path = SPCS_TOKEN_PATH,
    home: Path | None = None,
) -> ConnectionPlan:
    """Decide how to connect (see the module docstring) without connecting."""
    env = os.environ if environ is None else environ
    if token_path.is_file():
        return _spcs_plan(cfg, env, token_path)
    name = cfg.connection_name or env.get("SNOWFLAKE_DEFAULT_CONNECTION_NAME")
    path = connections_file(env, home)
    explicit = cfg.account or env.get("SNOWFLAKE_ACCOUNT")
    if name or not explicit:
        sections = _read_connections(path) if (name or path.is_file()) else {}
        if name is None and "default" in sections:
            name = "default"
        if name is not None:
            if name not in sections:
                known = ", ".join(sorted(sections)) or "none"
                raise SourceUnavailableError(
                    f"Snowflake connection {name!r} is not in {path} (connections there: {known}); "
                    "fix [source] connection_name / $SNOWFLAKE_DEFAULT_CONNECTION_NAME or add the connection"
                )
            named = {k: v for k, v in sections[name].items() if v not in (None, "")}
            return ConnectionPlan("connections.toml", _finish(named, cfg), f"{path} [{name}]")
    if not explicit:
        raise SourceUnavailableError(
            "no Snowflake connection configured: not running in SPCS (no token file at "
            f"{token_path}), no named connection ([source] connection_name or $SNOWFLAKE_DEFAULT_CONNECTION_NAME, "
            f"looked in {path}), and no [source] account / $SNOWFLAKE_ACCOUNT; set one of them"
        )
    params: dict[str, Any] = {"account": explicit}
    user = cfg.user or env.get("SNOWFLAKE_USER")
    if user:
        params["user"] = user
    if cfg.host:
        params["host"] = cfg.host
    if cfg.authenticator:
        params["authenticator"] = cfg.authenticator
    if cfg.private_key_file is not None:
        params["private_key_file"] = str(cfg.private_key_file)
        if env.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"):
            params["private_key_file_pwd"] = env["SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"]
    elif env.get("SNOWFLAKE_PASSWORD") and not cfg.authenticator:
        params["password"] = env["SNOWFLAKE_PASSWORD"]
    return ConnectionPlan("config", _finish(params, cfg, env), "[source] in the config")


def _spcs_plan(cfg: SourceConfig, env: Mapping[str, str], token_path: Path) -> ConnectionPlan:
    missing = [v for v in ("SNOWFLAKE_HOST", "SNOWFLAKE_ACCOUNT") if not env.get(v)]
    if missing:
        raise SourceUnavailableError(
            f"the SPCS token file {token_path} exists but {' and '.join(missing)} is not set; "
            "SPCS sets these in every service container: check the service, or remove the token file outside SPCS"
        )
    params: dict[str, Any] = {
        "host": env["SNOWFLAKE_HOST"],
        "account": env["SNOWFLAKE_ACCOUNT"],
        "authenticator": "oauth",
        "token_file_path": str(token_path),
    }
    if env.get("SNOWFLAKE_PORT"):
        params["port"] = int(env["SNOWFLAKE_PORT"])
    for key in ("database", "schema"):
        if env.get(f"SNOWFLAKE_{key.upper()}"):
            params[key] = env[f"SNOWFLAKE_{key.upper()}"]
    # The token is never sent anywhere by us; it is registered so that no log line can show it.
    with contextlib.suppress(OSError):
        register_secret(token_path.read_text(encoding="utf-8").strip())
    return ConnectionPlan("spcs", _finish(params, cfg, env), str(token_path))


def _finish(params: dict[str, Any], cfg: SourceConfig, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    out = dict(params)
    for key in ("role", "warehouse", "database", "schema"):
        val = getattr(cfg, key)
        if val:
            out[key] = val
    if not out.get("warehouse") and env is not None and env.get("SNOWFLAKE_WAREHOUSE"):
        out["warehouse"] = env["SNOWFLAKE_WAREHOUSE"]
    for key, val in _COMMON.items():
        out.setdefault(key, dict(val) if isinstance(val, dict) else val)
    for key in SECRET_PARAMS:
        if out.get(key):
            register_secret(str(out[key]))
    return out


def _read_connections(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceUnavailableError(f"{path} not found; create it or name no connection") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        # The message of a TOML error quotes no values, only positions; an OSError names the path.
        raise SourceUnavailableError(f"cannot read Snowflake connections file {path}: {exc}") from None
    return {k: v for k, v in data.items() if isinstance(v, dict)}


# --- opening a session -----------------------------------------------------------------------------

SessionFactory = Callable[[], Any]
_factory_override: SessionFactory | None = None


@contextlib.contextmanager
def use_session_factory(factory: SessionFactory) -> Iterator[None]:
    """Make every Snowflake source use ``factory()`` for its (re)connections.

    Tests hand in Snowpark local-testing sessions this way; a real deployment never sets it.
    """
    global _factory_override
    previous, _factory_override = _factory_override, factory
    try:
        yield
    finally:
        _factory_override = previous


def factory_injected() -> bool:
    """True while :func:`use_session_factory` is in effect."""
    return _factory_override is not None


def session_factory(cfg: SourceConfig) -> tuple[SessionFactory, ConnectionPlan | None]:
    """The factory a source uses, and the plan behind it (None when a test injected a factory)."""
    if _factory_override is not None:
        return _factory_override, None
    plan = connection_plan(cfg)
    return (lambda: open_session(plan)), plan


def open_session(plan: ConnectionPlan) -> Any:
    """Connect (the only function here that touches the network)."""
    from snowflake.snowpark import Session

    try:
        return Session.builder.configs(dict(plan.params)).create()
    except Exception as exc:  # every connector/Snowpark failure becomes one SourceUnavailableError
        where = plan.describe()
        target = where.get("host") or where.get("account") or "?"
        raise SourceUnavailableError(
            f"cannot connect to Snowflake {target} ({plan.method}, {plan.origin}): {scrub(_first_line(exc))}"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
