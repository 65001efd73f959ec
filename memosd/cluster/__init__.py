"""Clustering for memosd: real NATS JetStream servers to replicate through."""
