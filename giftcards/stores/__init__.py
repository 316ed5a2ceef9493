"""Merchants and their stores: API keys, terminals and what each role may do, the staff log,
failed-attempt limits. The tenant boundary starts here: every row belongs to one merchant."""
