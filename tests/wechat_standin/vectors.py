"""wechatpy's published test vectors for a cardExt signature: both the service and the stand-in sign alike."""

from __future__ import annotations

import pytest

TICKET = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
TIMESTAMP = "1414587457"
NONCE = "Wm3WZYTPz0wzccnW"
CARD_ID = "random_card_id"
# Each test that signs takes (code, signature) from this.
card_ext_vectors = pytest.mark.parametrize(
    ("code", "signature"),
    [
        ("", "22dce6bad4db532d4a2ef82ca2ca7bbe1e10ef28"),
        ("random_code", "2e9c6d12952246e071717d7baeab20c30420b5cd"),
    ],
)
