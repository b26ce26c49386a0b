"""testgate: a self-hostable test-orchestration control plane whose front door is a secure MCP server."""

__version__ = "0.1.0"
