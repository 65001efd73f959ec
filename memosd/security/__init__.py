"""Authentication (CURVE on TCP, file permissions on ipc) and authorization (namespace grants)."""
