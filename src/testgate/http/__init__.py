"""The HTTP front door: ASGI middleware (the stack in ``stack``), probes, metrics and outbound requests."""
