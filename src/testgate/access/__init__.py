"""Access: principals, roles and permissions, API tokens, users and passwords."""
