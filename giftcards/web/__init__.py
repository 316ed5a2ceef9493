"""The HTTP layer: operations as data (routing), the one adapter (calls), problems, middleware, metrics;
`api/` JSON endpoints, `pages/` + `templates/` + `locales/` the translated pages."""
