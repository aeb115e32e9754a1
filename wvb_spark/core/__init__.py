"""What every stage shares: the warehouse and its table registry, Delta storage, the session."""
