"""Server-rendered pages people open from a link or at a till.

Their templates and static files sit beside, in web/templates and web/static."""
