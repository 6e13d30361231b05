"""Thin routers: parse, call a service with the session and tenant, shape the answer."""
