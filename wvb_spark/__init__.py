"""wvb_spark: WorldValuesBench (WVS Wave 7) as Spark jobs over Delta tables."""

__version__ = "0.1.0"
