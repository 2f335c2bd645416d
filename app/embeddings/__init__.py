"""Similar items from embedding vectors (issue 15): the search over `app.inference.vectors` (`search`) and the
item-level service behind `GET /api/items/{id}/similar` (`similar`)."""
