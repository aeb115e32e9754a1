"""Spark DataFrame -> DataFrame pieces with no I/O and no settings files: what a stage
computes, kept apart from how it reads and writes."""
