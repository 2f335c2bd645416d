"""JSON/bytes HTTP API (thin routes: parse, call a service, return)."""
