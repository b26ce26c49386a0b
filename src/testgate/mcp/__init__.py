"""The MCP front door: a server generated from the operations registry, hosted per environment and on stdio."""
