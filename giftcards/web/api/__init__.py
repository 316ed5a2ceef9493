"""The JSON API endpoints, one module per resource family: each translates a request, calls the domain, renders."""
