"""The stand-in behaves as WeChat does, as seen through the real, unmodified wechatpy client."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import requests
import xmltodict
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import UserConsumeCardEvent, UserDeleteCardEvent, UserGetCardEvent, UserGiftingCardEvent
from wechatpy.exceptions import APILimitedException, WeChatClientException
from wechatpy.utils import check_signature

from .client import StandinWeChatClient, standin_wechat_client
from .server import (
    CallbackConfig,
    UserActionError,
    WeChatStandin,
    card_ext_signature,
    verify_card_ext_signature,
)
from .vectors import CARD_ID, NONCE, TICKET, TIMESTAMP, card_ext_vectors

if TYPE_CHECKING:
    from .conftest import Receiver

DEPOSIT = "GET_CUSTOM_CODE_MODE_DEPOSIT"
YEAR = 365 * 86400


def gift_card(**base_info: Any) -> dict[str, Any]:
    """A card/create payload for a deposit-mode gift card; keyword arguments override base_info."""
    base = {
        "logo_url": "https://example.com/logo.png",
        "brand_name": "Tea House",
        "code_type": "CODE_TYPE_QRCODE",
        "title": "Gift card",
        "color": "Color010",
        "notice": "Show the code at the till",
        "description": "Stored value",
        "date_info": {"type": "DATE_TYPE_FIX_TERM", "fixed_term": 365, "fixed_begin_term": 0},
        "sku": {"quantity": 0},
        "use_custom_code": True,
        "get_custom_code_mode": DEPOSIT,
    }
    base.update(base_info)
    return {
        "card": {
            "card_type": "GENERAL_CARD",
            "general_card": {"sub_card_type": "GIFT_CARD", "supply_balance": True, "base_info": base},
        }
    }


def errcode_of(call: Callable[..., Any], *args: Any, **kwargs: Any) -> int | None:
    with pytest.raises(WeChatClientException) as info:
        call(*args, **kwargs)
    return info.value.errcode


def stocked_card(client: StandinWeChatClient, codes: int = 3) -> tuple[str, list[str]]:
    """A deposit-mode card with `codes` codes deposited and stock raised to match."""
    card_id = client.card.create(gift_card())
    deposited = [f"GC{n:06d}" for n in range(codes)]
    client.card.deposit_code(card_id, deposited)
    client.card.modify_stock(card_id, codes)
    return card_id, deposited


def update_user(
    client: StandinWeChatClient, card_id: str, code: str, balance: int, record: str
) -> dict[str, Any]:
    return client.card._post(
        "card/generalcard/updateuser",
        data={"card_id": card_id, "code": code, "balance": balance, "record_balance": record},
    )


# --- tokens ------------------------------------------------------------------------------------------------


def test_token_fetch_gives_a_token_the_card_api_accepts(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    answer = client.fetch_access_token()
    assert answer["expires_in"] == 7200
    assert [t.value for t in standin.state.tokens()] == [answer["access_token"]]
    assert client.card.create(gift_card()).startswith("p")
    assert standin.calls_to("card/create")[0].query["access_token"] == answer["access_token"]


def test_wrong_secret_and_unknown_appid_are_refused(standin: WeChatStandin) -> None:
    for appid, secret, errcode in (
        (standin.appid, "wrong", 40125),
        ("wx0000000000000000", standin.secret, 40013),
    ):
        wechat = standin_wechat_client(standin.base_url, appid, secret)
        assert errcode_of(wechat.fetch_access_token) == errcode
        wechat._http.close()
    assert standin.state.tokens() == []


def test_a_token_past_its_lifetime_gets_42001() -> None:
    with WeChatStandin(token_lifetime=0.3) as standin:
        token = httpx.get(
            standin.base_url + "cgi-bin/token",
            params={"grant_type": "client_credential", "appid": standin.appid, "secret": standin.secret},
        ).json()
        assert token["expires_in"] == 1  # whole seconds, rounded up
        wechat = standin_wechat_client(
            standin.base_url, standin.appid, standin.secret, access_token=token["access_token"]
        )
        card_id = wechat.card.create(gift_card())
        time.sleep(0.4)
        assert errcode_of(wechat.card.get, card_id) == 42001
        wechat._http.close()


def test_an_unknown_or_missing_token_is_refused(standin: WeChatStandin) -> None:
    wechat = standin_wechat_client(
        standin.base_url, standin.appid, standin.secret, access_token="not-a-token"
    )
    assert errcode_of(wechat.card.create, gift_card()) == 40001
    wechat._http.close()
    assert httpx.post(standin.base_url + "card/get", json={"card_id": "x"}).json()["errcode"] == 41001


def test_expiring_all_tokens_makes_the_next_call_42001_until_a_new_fetch(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id = client.card.create(gift_card())
    standin.expire_tokens()
    assert errcode_of(client.card.get, card_id) == 42001  # wechatpy still believes in its cached token
    client.fetch_access_token()
    assert client.card.get(card_id)["card_type"] == "GENERAL_CARD"


def test_a_superseded_token_works_for_five_minutes_then_gets_40001(standin: WeChatStandin) -> None:
    first, second = (standin_wechat_client(standin.base_url, standin.appid, standin.secret) for _ in range(2))
    card_id = first.card.create(gift_card())
    second.fetch_access_token()
    assert first.card.get(card_id)
    standin.advance_clock(301)
    assert errcode_of(first.card.get, card_id) == 40001
    assert second.card.get(card_id)
    first._http.close()
    second._http.close()


def test_wx_card_ticket_is_issued_and_live(standin: WeChatStandin, client: StandinWeChatClient) -> None:
    ticket = client.jsapi.get_jsapi_card_ticket()
    assert standin.state.valid_tickets("wx_card") == [ticket]
    assert standin.calls_to("cgi-bin/ticket/getticket")[0].query["type"] == "wx_card"


# --- cards and codes ---------------------------------------------------------------------------------------


def test_deposit_mode_card_is_created_with_zero_stock(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id = client.card.create(gift_card())
    base = client.card.get(card_id)["general_card"]["base_info"]
    assert (base["id"], base["sku"], base["get_custom_code_mode"]) == (
        card_id,
        {"quantity": 0, "total_quantity": 0},
        DEPOSIT,
    )
    assert standin.card(card_id).deposit_mode


@pytest.mark.parametrize(
    ("payload", "errcode"),
    [
        (gift_card(sku={"quantity": 10}), 40136),  # deposit mode needs stock 0 at creation
        (gift_card(use_custom_code=False), 40136),
        ({"card": {"card_type": "GROUPON", "groupon": {}}}, 40071),
        (gift_card(title="A title far longer than nine Chinese characters"), 40097),
        (
            gift_card(
                date_info={"type": "DATE_TYPE_FIX_TIME_RANGE", "begin_timestamp": 20, "end_timestamp": 10}
            ),
            40079,
        ),
    ],
)
def test_card_create_refuses_what_wechat_refuses(
    client: StandinWeChatClient, payload: dict[str, Any], errcode: int
) -> None:
    assert errcode_of(client.card.create, payload) == errcode


def test_card_create_names_missing_fields(client: StandinWeChatClient) -> None:
    payload = gift_card()
    del payload["card"]["general_card"]["base_info"]["notice"]
    with pytest.raises(WeChatClientException) as info:
        client.card.create(payload)
    assert info.value.errcode == 41011
    assert "notice" in info.value.errmsg


def test_150_codes_deposit_in_two_calls_and_101_in_one_is_40109(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id = client.card.create(gift_card())
    codes = [f"GC{n:06d}" for n in range(150)]
    assert len(client.card.deposit_code(card_id, codes[:100])["succ_code"]) == 100
    assert client.card.deposit_code(card_id, codes[100:])["succ_code"] == codes[100:]
    assert errcode_of(client.card.deposit_code, card_id, [f"X{n}" for n in range(101)]) == 40109
    assert client.card.get_deposit_count(card_id)["count"] == 150
    again = client.card.deposit_code(card_id, [codes[0], "NEW", "NEW", ""])
    assert (again["succ_code"], again["duplicate_code"], again["fail_code"]) == (
        ["NEW"],
        [codes[0], "NEW"],
        [""],
    )
    assert client.card.get_deposit_count(card_id)["count"] == 151


def test_checkcode_splits_deposited_from_unknown(client: StandinWeChatClient) -> None:
    card_id, codes = stocked_card(client)
    answer = client.card.check_code(card_id, [codes[0], "NOPE", codes[2]])
    assert (answer["exist_code"], answer["not_exist_code"]) == ([codes[0], codes[2]], ["NOPE"])


def test_stock_cannot_exceed_deposited_codes_not_yet_handed_out(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id = client.card.create(gift_card())
    client.card.deposit_code(card_id, ["A", "B", "C"])
    assert errcode_of(client.card.modify_stock, card_id, 4) == 40136
    client.card.modify_stock(card_id, 3)
    standin.add_to_wallet(card_id, "A", "o-alice")  # takes one code and one unit of stock
    assert standin.card(card_id).quantity == 2
    assert errcode_of(client.card.modify_stock, card_id, 1) == 40136
    client.card.modify_stock(card_id, -2)
    assert client.card.get(card_id)["general_card"]["base_info"]["sku"]["quantity"] == 0
    assert errcode_of(client.card.modify_stock, card_id, -1) == 40097


def test_qrcode_create_answers_ticket_expiry_and_urls(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id, codes = stocked_card(client)
    spec = {
        "action_name": "QR_CARD",
        "expire_seconds": 1800,
        "action_info": {"card": {"card_id": card_id, "code": codes[1], "outer_str": "shop-7"}},
    }
    answer = client.card._post("card/qrcode/create", data=spec)
    assert answer["expire_seconds"] == 1800
    assert answer["url"].startswith("http://weixin.qq.com/q/")
    assert answer["show_qrcode_url"].endswith(answer["ticket"])
    assert client.card.create_qrcode(spec) != answer["ticket"]  # wechatpy's helper returns only a ticket
    assert errcode_of(client.card._post, "card/qrcode/create", data={**spec, "expire_seconds": 59}) == 40097

    held = standin.scan_qrcode(answer["url"], "o-bob")
    assert (held.code, held.openid, held.outer_str, held.status) == (codes[1], "o-bob", "shop-7", "NORMAL")
    with pytest.raises(UserActionError, match="already used"):
        standin.scan_qrcode(answer["ticket"], "o-carol")


def test_code_get_reports_holder_validity_and_status(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id, codes = stocked_card(client)
    assert errcode_of(client.card.get_code, codes[0], card_id) == 40056  # still in the pool
    standin.add_to_wallet(card_id, codes[0], "o-alice", outer_str="campaign")
    answer = client.card.get_code(codes[0], card_id)
    assert answer["openid"] == "o-alice"
    assert answer["card"]["card_id"] == card_id
    assert answer["card"]["end_time"] - answer["card"]["begin_time"] == YEAR
    assert (answer["can_consume"], answer["user_card_status"], answer["outer_str"]) == (
        True,
        "NORMAL",
        "campaign",
    )


def test_updateuser_balance_is_what_the_standin_then_holds(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id, codes = stocked_card(client)
    standin.add_to_wallet(card_id, codes[0], "o-alice")
    first = update_user(client, card_id, codes[0], 5000, "Loaded ¥50.00")
    assert (first["result_balance"], first["result_bonus"], first["openid"]) == (5000, 0, "o-alice")
    update_user(client, card_id, codes[0], 3550, "Spent ¥14.50")
    held = standin.state.codes[(card_id, codes[0])]
    assert held.balance == 3550
    assert held.record_balances == ["Loaded ¥50.00", "Spent ¥14.50"]
    assert (held.updates[1].balance_before, held.updates[1].balance) == (5000, 3550)
    assert errcode_of(update_user, client, card_id, codes[1], 100, "x") == 40056  # nobody holds it
    assert (
        errcode_of(
            client.card._post,
            "card/generalcard/updateuser",
            data={"card_id": card_id, "code": codes[0], "balance": "12"},
        )
        == 47001
    )


def test_consuming_twice_gets_40099(standin: WeChatStandin, client: StandinWeChatClient) -> None:
    card_id, codes = stocked_card(client)
    standin.add_to_wallet(card_id, codes[0], "o-alice")
    assert client.card.consume_code(codes[0], card_id)["openid"] == "o-alice"
    assert errcode_of(client.card.consume_code, codes[0], card_id) == 40099
    assert errcode_of(client.card.get_code, codes[0], card_id) == 40099  # check_consume defaults to true
    relaxed = client.card.get_code(codes[0], card_id, check_consume=False)
    assert (relaxed["user_card_status"], relaxed["can_consume"]) == ("CONSUMED", False)


def test_unavailable_is_irreversible(standin: WeChatStandin, client: StandinWeChatClient) -> None:
    card_id, codes = stocked_card(client)
    standin.add_to_wallet(card_id, codes[0], "o-alice")
    client.card._post(
        "card/code/unavailable", data={"card_id": card_id, "code": codes[0], "reason": "refund"}
    )
    held = standin.code(card_id, codes[0])
    assert (held.status, held.unavailable_reason) == ("UNAVAILABLE", "refund")
    assert errcode_of(client.card.invalid_code, codes[0], card_id) == 40127
    assert errcode_of(client.card.consume_code, codes[0], card_id) == 40127
    assert errcode_of(update_user, client, card_id, codes[0], 1, "x") == 40127


def test_a_code_past_its_validity_reads_expire_and_cannot_be_consumed(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id, codes = stocked_card(client)
    standin.add_to_wallet(card_id, codes[0], "o-alice")
    standin.advance_clock(YEAR + 1)
    client.fetch_access_token()  # the old token expired with the clock
    answer = client.card.get_code(codes[0], card_id)
    assert (answer["user_card_status"], answer["can_consume"]) == ("EXPIRE", False)
    assert errcode_of(client.card.consume_code, codes[0], card_id) == 40127


def test_api_paths_the_standin_does_not_model_and_wrong_methods(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    token = client.access_token
    assert (
        httpx.post(standin.base_url + "card/delete", params={"access_token": token}, json={}).json()[
            "errcode"
        ]
        == 48001
    )
    assert httpx.get(standin.base_url + "card/get", params={"access_token": token}).json()["errcode"] == 43002
    assert (
        httpx.post(standin.base_url + "card/get", params={"access_token": token}, content=b"{nope").json()[
            "errcode"
        ]
        == 47001
    )


def test_every_call_is_logged_with_its_body_and_answer(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id, _ = stocked_card(client, codes=2)
    assert [c.path for c in standin.calls] == [
        "cgi-bin/token",
        "card/create",
        "card/code/deposit",
        "card/modifystock",
    ]
    deposit = standin.calls_to("card/code/deposit")[0]
    assert (deposit.method, deposit.body["card_id"], deposit.errcode) == ("POST", card_id, 0)
    assert all("errcode" in c.response for c in standin.calls[1:])


# --- faults ------------------------------------------------------------------------------------------------


def test_system_busy_answers_minus_1_once(standin: WeChatStandin, client: StandinWeChatClient) -> None:
    card_id = client.card.create(gift_card())
    standin.faults.system_busy(path="card/get")
    assert errcode_of(client.card.get, card_id) == -1
    assert client.card.get(card_id)
    assert [c.fault for c in standin.calls_to("card/get")] == ["errcode", None]


def test_rate_limit_raises_wechatpys_api_limited(standin: WeChatStandin, client: StandinWeChatClient) -> None:
    client.fetch_access_token()  # (a 45009 on the token fetch itself is a plain WeChatClientException)
    standin.faults.rate_limit()
    with pytest.raises(APILimitedException) as info:
        client.card.create(gift_card())
    assert info.value.errcode == 45009
    assert client.card.create(gift_card())


def test_fail_next_n_calls_hits_only_that_path(standin: WeChatStandin, client: StandinWeChatClient) -> None:
    card_id, codes = stocked_card(client)
    standin.add_to_wallet(card_id, codes[0], "o-alice")
    standin.faults.fail_next(2, "card/code/consume")
    assert client.card.get(card_id)
    assert [errcode_of(client.card.consume_code, codes[0], card_id) for _ in range(2)] == [-1, -1]
    assert client.card.consume_code(codes[0], card_id)["openid"] == "o-alice"
    assert standin.faults.active == []


def test_slow_answer_times_out_wechatpy_yet_the_consume_landed(standin: WeChatStandin) -> None:
    wechat = standin_wechat_client(standin.base_url, standin.appid, standin.secret, timeout=0.3)
    card_id, codes = stocked_card(wechat)
    standin.add_to_wallet(card_id, codes[0], "o-alice")
    standin.faults.slow(5, path="card/code/consume")
    with pytest.raises(requests.exceptions.ReadTimeout):
        wechat.card.consume_code(codes[0], card_id)
    assert standin.code(card_id, codes[0]).status == "CONSUMED"
    assert errcode_of(wechat.card.consume_code, codes[0], card_id) == 40099  # the retry learns the truth
    wechat._http.close()


def test_slow_without_apply_first_answers_late_but_normally(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id = client.card.create(gift_card())
    standin.faults.slow(0.3, path="card/get", apply_first=False)
    started = time.monotonic()
    assert client.card.get(card_id)["card_type"] == "GENERAL_CARD"
    assert time.monotonic() - started >= 0.3
    assert standin.calls_to("card/get")[0].fault == "slow"


def test_http_503_reaches_wechatpy_as_an_exception_without_errcode(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id = client.card.create(gift_card())
    standin.faults.http_error(503)
    with pytest.raises(WeChatClientException) as info:
        client.card.get(card_id)
    assert (info.value.errcode, info.value.response.status_code) == (None, 503)


def test_down_refuses_connections_then_comes_back_on_the_same_port(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id = client.card.create(gift_card())
    url = standin.base_url
    standin.go_down()
    with pytest.raises(requests.exceptions.ConnectionError):
        client.card.get(card_id)
    standin.come_up()
    assert standin.base_url == url
    assert client.card.get(card_id)["card_type"] == "GENERAL_CARD"  # state and tokens survived


def test_http_control_endpoint_sets_faults_expires_tokens_and_takes_it_down(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    control = standin.base_url + "_standin/faults"
    card_id = client.card.create(gift_card())
    active = httpx.post(control, json={"kind": "rate_limit", "path": "card/get"}).json()["faults"]
    assert active[0]["errcode"] == 45009
    assert errcode_of(client.card.get, card_id) == 45009
    httpx.post(control, json={"kind": "expire_tokens"})
    assert errcode_of(client.card.get, card_id) == 42001
    client.fetch_access_token()

    httpx.post(control, json={"kind": "down", "seconds": 1.0})  # long enough for a slow machine to see it
    deadline = time.monotonic() + 10
    while standin.running and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.card.get(card_id)
    while not standin.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.card.get(card_id)


def test_start_and_stop_are_quick_and_leave_no_threads() -> None:
    before = set(threading.enumerate())
    started = time.monotonic()
    standin = WeChatStandin().start()
    assert httpx.get(standin.base_url + "_standin/calls").json() == []
    standin.stop()
    assert time.monotonic() - started < 5  # no waiting out a keep-alive or a timeout (generous for CI)
    assert set(threading.enumerate()) == before


# --- event pushes ------------------------------------------------------------------------------------------


def aes_key() -> str:
    return base64.b64encode(os.urandom(32)).decode().rstrip("=")


def test_plain_push_is_signed_and_parses_as_user_get_card(
    standin: WeChatStandin, client: StandinWeChatClient, receiver: Receiver
) -> None:
    standin.callback = CallbackConfig(receiver.url, "cb-token")
    card_id, codes = stocked_card(client)
    standin.add_to_wallet(card_id, codes[0], "o-alice", outer_str="shop-7")
    [push] = receiver.received
    check_signature("cb-token", push.query["signature"], push.query["timestamp"], push.query["nonce"])
    event = parse_message(push.body)
    assert isinstance(event, UserGetCardEvent)
    assert (
        event.source,
        event.target,
        event.card_id,
        event.code,
        event.outer_str,
        event.is_given_by_friend,
    ) == ("o-alice", standin.original_id, card_id, codes[0], "shop-7", 0)
    assert standin.events[-1].delivered


def test_aes_push_decrypts_with_wechatcrypto(
    standin: WeChatStandin, client: StandinWeChatClient, receiver: Receiver
) -> None:
    key = aes_key()
    standin.callback = CallbackConfig(receiver.url, "cb-token", mode="aes", encoding_aes_key=key)
    card_id, codes = stocked_card(client)
    standin.add_to_wallet(card_id, codes[0], "o-alice")
    [push] = receiver.received
    assert push.query["encrypt_type"] == "aes"
    assert codes[0] not in push.body
    assert xmltodict.parse(push.body)["xml"]["ToUserName"] == standin.original_id
    plain = WeChatCrypto("cb-token", key, standin.appid).decrypt_message(
        push.body, push.query["msg_signature"], push.query["timestamp"], push.query["nonce"]
    )
    event = parse_message(plain)
    assert isinstance(event, UserGetCardEvent)
    assert (event.card_id, event.code) == (card_id, codes[0])


def test_gift_delete_and_consume_events_parse_to_their_classes(
    standin: WeChatStandin, client: StandinWeChatClient, receiver: Receiver
) -> None:
    standin.callback = CallbackConfig(receiver.url, "cb-token")
    card_id, codes = stocked_card(client)
    standin.add_to_wallet(card_id, codes[0], "o-alice")
    standin.gift_to_friend(card_id, codes[0], "o-bob", new_code="GC-NEW")
    standin.delete_from_wallet(card_id, "GC-NEW")
    standin.add_to_wallet(card_id, codes[1], "o-carol")
    standin.consume_in_wechat(card_id, codes[1], staff_openid="o-staff")
    events = [parse_message(r.body) for r in receiver.received]
    assert [type(e) for e in events] == [
        UserGetCardEvent,
        UserGiftingCardEvent,
        UserGetCardEvent,
        UserDeleteCardEvent,
        UserGetCardEvent,
        UserConsumeCardEvent,
    ]
    gifting, accepted, deleted, consumed = events[1], events[2], events[3], events[5]
    assert (gifting.source, gifting.friend, gifting.code, gifting.is_return_back) == (
        "o-alice",
        "o-bob",
        codes[0],
        0,
    )
    assert (
        accepted.source,
        accepted.is_given_by_friend,
        accepted.friend,
        accepted.old_code,
        accepted.code,
    ) == ("o-bob", 1, "o-alice", codes[0], "GC-NEW")
    assert (deleted.source, deleted.code) == ("o-bob", "GC-NEW")
    assert (consumed.consume_source, consumed.staff) == ("FROM_MOBILE_HELPER", "o-staff")
    assert standin.code(card_id, "GC-NEW").status == "DELETE"


def test_a_receiver_that_never_answers_gets_exactly_three_identical_attempts(
    standin: WeChatStandin, client: StandinWeChatClient, receiver: Receiver
) -> None:
    # The docs: "总共重试三次" / "a maximum of three retries"; developers see three requests in all.
    receiver.hang = 10
    standin.callback = CallbackConfig(receiver.url, "cb-token", timeout=0.2)
    card_id, codes = stocked_card(client)
    standin.add_to_wallet(card_id, codes[0], "o-alice")
    push = standin.events[-1]
    assert [(a.number, a.error, a.accepted) for a in push.attempts] == [
        (1, "timeout", False),
        (2, "timeout", False),
        (3, "timeout", False),
    ]
    assert not push.delivered
    assert len(receiver.received) == 3
    assert len({(json.dumps(r.query, sort_keys=True), r.body) for r in receiver.received}) == 1
    assert standin.code(card_id, codes[0]).status == "NORMAL"  # the card is in the wallet regardless


@pytest.mark.parametrize(
    ("status", "reply", "attempts"),
    [(200, "success", 1), (200, "", 1), (500, "oops", 3), (200, "failure", 3)],
)
def test_answers_other_than_success_or_empty_are_retried(
    standin: WeChatStandin,
    client: StandinWeChatClient,
    receiver: Receiver,
    status: int,
    reply: str,
    attempts: int,
) -> None:
    receiver.status, receiver.reply = status, reply
    standin.callback = CallbackConfig(receiver.url, "cb-token", timeout=1)
    card_id, codes = stocked_card(client)
    standin.add_to_wallet(card_id, codes[0], "o-alice")
    assert [a.status_code for a in standin.events[-1].attempts] == [status] * attempts


def test_without_a_callback_events_are_recorded_but_not_pushed(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id, codes = stocked_card(client)
    standin.add_to_wallet(card_id, codes[0], "o-alice")
    [event] = standin.events
    assert (event.event, event.attempts, event.delivered) == ("user_get_card", [], False)
    assert isinstance(parse_message(event.xml), UserGetCardEvent)


# --- the simulated user ------------------------------------------------------------------------------------


@card_ext_vectors
def test_card_ext_signature_matches_wechatpys_test_vectors(code: str, signature: str) -> None:
    ext = {"code": code, "timestamp": TIMESTAMP, "nonce_str": NONCE, "signature": signature}
    assert (
        card_ext_signature(
            api_ticket=TICKET,
            timestamp=TIMESTAMP,
            card_id=CARD_ID,
            code=code,
            nonce_str=NONCE,
        )
        == signature
    )
    assert verify_card_ext_signature(json.dumps(ext), api_ticket=TICKET, card_id=CARD_ID)
    assert not verify_card_ext_signature({**ext, "code": code + "x"}, api_ticket=TICKET, card_id=CARD_ID)
    assert not verify_card_ext_signature(ext, api_ticket=TICKET, card_id="other_card_id")


def test_add_card_checks_the_card_ext_against_a_live_ticket(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id, codes = stocked_card(client)
    ticket = client.jsapi.get_jsapi_card_ticket()
    ext = {
        "code": codes[2],
        "openid": "o-alice",
        "timestamp": str(int(time.time())),
        "nonce_str": "n0nce",
        "outer_str": "web",
    }
    ext["signature"] = card_ext_signature(
        api_ticket=ticket,
        card_id=card_id,
        **{k: ext[k] for k in ("code", "openid", "timestamp", "nonce_str")},
    )
    with pytest.raises(UserActionError, match="another openid"):
        standin.add_card(card_id, json.dumps(ext), "o-mallory")
    with pytest.raises(UserActionError, match="signature"):
        standin.add_card(card_id, {**ext, "code": codes[1]}, "o-alice")
    held = standin.add_card(card_id, json.dumps(ext), "o-alice")
    assert (held.code, held.openid, held.outer_str, standin.card(card_id).quantity) == (
        codes[2],
        "o-alice",
        "web",
        2,
    )


def test_a_card_out_of_stock_cannot_reach_a_wallet(
    standin: WeChatStandin, client: StandinWeChatClient
) -> None:
    card_id = client.card.create(gift_card())
    client.card.deposit_code(card_id, ["A"])
    with pytest.raises(UserActionError, match="out of stock"):
        standin.add_to_wallet(card_id, "A", "o-alice")


def test_user_actions_over_http(standin: WeChatStandin, client: StandinWeChatClient) -> None:
    card_id, codes = stocked_card(client)
    answer = httpx.post(
        standin.base_url + "_standin/user/add_to_wallet",
        json={"card_id": card_id, "code": codes[0], "openid": "o-alice"},
    )
    assert (answer.status_code, answer.json()["status"], answer.json()["openid"]) == (
        200,
        "NORMAL",
        "o-alice",
    )
    refused = httpx.post(
        standin.base_url + "_standin/user/add_to_wallet",
        json={"card_id": card_id, "code": codes[0], "openid": "o-bob"},
    )
    assert refused.status_code == 400
    assert httpx.get(standin.base_url + "_standin/state").json()["codes"][0]["openid"] == "o-alice"
