"""HTTP layer: thin routers that parse, call one service and return a schema."""
