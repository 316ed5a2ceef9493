"""The wallet: a holder's cards of one merchant in one place, opened by a short-lived session, and the gifts
waiting for or sent by that holder."""
