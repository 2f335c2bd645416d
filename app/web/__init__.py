"""HTML pages (Jinja2), rendered from the same catalog services as the JSON API."""
