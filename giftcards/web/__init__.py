"""The HTTP layer: operations declared as data (routing), the adapter every call goes through
(calls), problems and middleware; `api/` holds the JSON endpoints, `pages/` the server-rendered pages."""
