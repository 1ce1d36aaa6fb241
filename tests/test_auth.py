"""Who is an operator: the SPCS user header, the operators list, local runs, tampered headers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.runtime.context import StreamlitHeaders

from syncer import Config, History, NotAuthorizedError
from syncer.admin import USER_HEADER, identify, require_operator

ADMIN = """
[admin]
operators = ["ALICE", "bob"]
allow_local_operator = {local}
"""


@pytest.fixture
def admin_config(make_config: Callable[..., Config]) -> Callable[..., Config]:
    def make(local: bool = False) -> Config:
        return make_config(extra=ADMIN.format(local=str(local).lower()))

    return make


def events(cfg: Config) -> list[dict]:
    return History(Path(cfg.root) / "syncer.db").events()


@pytest.mark.parametrize(
    ("headers", "user", "operator"),
    [
        pytest.param({USER_HEADER: "bob"}, "bob", True, id="listed"),
        pytest.param({USER_HEADER: "alice"}, "alice", True, id="listed-case-insensitive"),
        pytest.param({"sf-context-current-user": "  bob "}, "bob", True, id="header-name-case-and-spaces"),
        pytest.param({USER_HEADER: "mallory"}, "mallory", False, id="not-listed"),
        pytest.param(StreamlitHeaders([(USER_HEADER, "bob")]), "bob", True, id="st-context-headers"),
        pytest.param([(b"sf-context-current-user", b"bob")], "bob", True, id="asgi-byte-pairs"),
    ],
)
def test_spcs_user_header_decides(admin_config: Callable[..., Config], headers: object, user: str, operator: bool) -> None:
    who = identify(admin_config(local=True), headers)
    assert (who.user, who.operator, who.local) == (user, operator, False)
    assert user in who.reason


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(StreamlitHeaders([(USER_HEADER, "bob"), (USER_HEADER, "bob")]), id="repeated-same"),
        pytest.param(StreamlitHeaders([(USER_HEADER, "mallory"), (USER_HEADER, "bob")]), id="repeated-different"),
        pytest.param([(USER_HEADER, "bob"), ("SF-CONTEXT-CURRENT-USER", "alice")], id="repeated-pairs"),
        pytest.param({USER_HEADER: ""}, id="empty"),
        pytest.param({USER_HEADER: "   "}, id="blank"),
    ],
)
def test_repeated_or_empty_header_is_refused_even_when_local_operators_are_allowed(
    admin_config: Callable[..., Config], headers: object
) -> None:
    who = identify(admin_config(local=True), headers)
    assert who.operator is False
    assert who.user is None
    assert "refused" in who.reason


@pytest.mark.parametrize(
    ("local", "operator"), [pytest.param(True, True, id="allowed"), pytest.param(False, False, id="default")]
)
def test_no_header_is_a_local_run_operator_only_if_the_config_says_so(
    admin_config: Callable[..., Config], local: bool, operator: bool
) -> None:
    for headers in ({}, StreamlitHeaders([("Host", "localhost:8501")]), None):
        who = identify(admin_config(local=local), headers)
        assert who.local is True
        assert who.operator is operator
        assert who.user is not None and who.user.startswith("local")
        assert "allow_local_operator" in who.reason


def test_require_operator_records_the_refusal_with_user_and_action(admin_config: Callable[..., Config]) -> None:
    cfg = admin_config(local=False)
    with pytest.raises(NotAuthorizedError, match="rollback refused: mallory is not listed"):
        require_operator(cfg, {USER_HEADER: "mallory"}, "rollback", to="20260101T000000Z-abcd")
    with pytest.raises(NotAuthorizedError, match="sent 2 times"):
        require_operator(cfg, [(USER_HEADER, "bob"), (USER_HEADER, "bob")], "sync")
    refused = [e for e in events(cfg) if e["kind"] == "refused"]
    assert [(e["user"], e["detail"]["action"]) for e in refused] == [("(invalid user header)", "sync"), ("mallory", "rollback")]
    assert refused[1]["detail"]["to"] == "20260101T000000Z-abcd"


def test_require_operator_lets_an_operator_through_without_an_audit_entry(admin_config: Callable[..., Config]) -> None:
    cfg = admin_config(local=False)
    who = require_operator(cfg, {USER_HEADER: "ALICE"}, "sync")
    assert who.operator and who.user == "ALICE"
    assert events(cfg) == []
