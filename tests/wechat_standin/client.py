"""wechatpy's own WeChatClient, pointed at the stand-in: the three base URLs and nothing else changed."""

from __future__ import annotations

from typing import Any

from wechatpy import WeChatClient


class StandinWeChatClient(WeChatClient):
    """WeChatClient whose API, card API and token URLs lead to `base_url`; auto_retry is always off.

    wechatpy's auto_retry recurses without limit on 40001/40014/42001, so callers own the refresh.
    """

    def __init__(
        self,
        base_url: str,
        appid: str,
        secret: str,
        *,
        timeout: float | None = None,
        session: Any = None,
        access_token: str | None = None,
    ) -> None:
        super().__init__(
            appid, secret, access_token=access_token, session=session, timeout=timeout, auto_retry=False
        )
        root = base_url.rstrip("/") + "/"
        self.API_BASE_URL = root + "cgi-bin/"
        self.card.API_BASE_URL = root  # the card API object is per client: the instance attribute is enough
        self.token_url = root + "cgi-bin/token"

    def fetch_access_token(self) -> dict[str, Any]:
        # The parent hard-codes https://api.weixin.qq.com/cgi-bin/token. Note that wechatpy sends this
        # request without a timeout, whatever `timeout=` says.
        return self._fetch_access_token(
            url=self.token_url,
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


def standin_wechat_client(
    base_url: str, appid: str, secret: str, *, timeout: float | None = None, access_token: str | None = None
) -> StandinWeChatClient:
    """A wechatpy client for the stand-in at `base_url` (close it with `client._http.close()`)."""
    return StandinWeChatClient(base_url, appid, secret, timeout=timeout, access_token=access_token)
