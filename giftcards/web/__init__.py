"""The HTTP layer: operations declared as data (routing), the adapter every call goes through (calls),
problems, middleware; `api/` JSON endpoints, `pages/` + `templates/` + `locales/` the translated pages."""
