"""The test platform: workflows, executions, logs, artifacts, results, test cases and analytics."""
