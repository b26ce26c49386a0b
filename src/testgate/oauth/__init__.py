"""The authorization server: metadata, DCR + CIMD, authorize + consent, token, revoke, JWKS."""
