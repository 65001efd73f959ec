"""Memory tiers: pages, heat, residency, consolidation and the scheduler."""
