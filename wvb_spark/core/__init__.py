"""What every stage shares: the warehouse and its table registry, Delta storage, settings,
the Spark session, the survey metadata and table schemas, errors and logs."""
