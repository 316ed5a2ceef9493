"""The JSON API endpoints, one module per resource family.

Each translates a request, calls the domain and renders the answer."""
