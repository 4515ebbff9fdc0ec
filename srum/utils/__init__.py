"""Small shared helpers: atomic file writes and run manifests (io), logging setup (logging)."""
