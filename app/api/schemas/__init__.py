"""Pydantic models of the JSON API's responses (and request bodies), one concept per module.

They document `/openapi.json`; routes on hot paths still send the services' dicts through orjson
(`app.api.deps.json_response`, which FastAPI does not validate), and `tests/api/test_openapi_schemas.py` checks
that real responses match these schemas key for key.
"""
