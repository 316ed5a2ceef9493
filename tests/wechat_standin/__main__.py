"""Run the stand-in by hand and watch the calls: `python -m tests.wechat_standin --port 9100`."""

from __future__ import annotations

import argparse
import logging
import signal
import time
from typing import Any

from .server import DEFAULT_APPID, DEFAULT_SECRET, CallbackConfig, WeChatStandin


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.wechat_standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--appid", default=DEFAULT_APPID)
    parser.add_argument("--secret", default=DEFAULT_SECRET)
    parser.add_argument("--token-lifetime", type=float, default=7200, help="seconds (default 7200)")
    parser.add_argument("--callback-url", help="where to push events, e.g. http://127.0.0.1:8000/wechat")
    parser.add_argument("--callback-token", default="standin-token", help="the account's server Token")
    parser.add_argument("--aes-key", help="EncodingAESKey (43 characters): push in safe (aes) mode")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    callback = None
    if args.callback_url:
        callback = CallbackConfig(
            args.callback_url,
            args.callback_token,
            mode="aes" if args.aes_key else "plain",
            encoding_aes_key=args.aes_key,
        )
    standin = WeChatStandin(
        args.appid,
        args.secret,
        token_lifetime=args.token_lifetime,
        callback=callback,
        host=args.host,
        port=args.port,
    )
    standin.start()
    signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly under process managers too
    base = standin.base_url
    print(f"WeChat stand-in on {base}  (use it in place of https://api.weixin.qq.com/)")
    print(f"  appid   {standin.appid}\n  secret  {standin.secret}")
    if callback:
        print(f"  pushes  {callback.url} ({callback.mode} mode, token {callback.token!r})")
    print(f"  control GET {base}_standin/calls | GET {base}_standin/state | POST {base}_standin/reset")
    print(
        f'          POST {base}_standin/faults {{"kind": "system_busy"|"rate_limit"|"errcode"|'
        f'"http_status"|"slow"|"expire_tokens"|"down", "path": ..., "times": ...}}'
    )
    print(
        f'          POST {base}_standin/user/add_to_wallet {{"card_id", "code", "openid"}} (and '
        "gift_to_friend, accept_gift, delete_from_wallet, consume_in_wechat, scan_qrcode, add_card)"
    )
    print("Ctrl-C stops it.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
