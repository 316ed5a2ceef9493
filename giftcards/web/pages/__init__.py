"""Server-rendered pages people open from a link or at a till, with their templates and static files beside."""
