"""Gifting: designs and their covers, uploaded images, card pictures, gifts and their links,
customise sessions and the owner's card page access."""
