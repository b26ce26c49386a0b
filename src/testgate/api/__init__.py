"""REST API: routes under ``/api/v1`` that parse a request, dispatch one operation and serialize its output."""
