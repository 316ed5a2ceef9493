"""A stand-in for WeChat's card API and event pushes, for tests and for watching the flow by hand.

with WeChatStandin() as standin:
    client = standin_wechat_client(standin.base_url, standin.appid, standin.secret)
    ...
    assert standin.code(card_id, code).balance == ledger_balance
"""

from __future__ import annotations

from .client import StandinWeChatClient, standin_wechat_client
from .server import (
    BalanceUpdate,
    CallbackConfig,
    CallRecord,
    Card,
    CardCode,
    Fault,
    FaultPlan,
    PushAttempt,
    PushResult,
    ThreadedServer,
    UserActionError,
    WeChatStandin,
    card_ext_signature,
    event_xml,
    verify_card_ext_signature,
)

__all__ = [
    "BalanceUpdate",
    "CallRecord",
    "CallbackConfig",
    "Card",
    "CardCode",
    "Fault",
    "FaultPlan",
    "PushAttempt",
    "PushResult",
    "StandinWeChatClient",
    "ThreadedServer",
    "UserActionError",
    "WeChatStandin",
    "card_ext_signature",
    "event_xml",
    "standin_wechat_client",
    "verify_card_ext_signature",
]
