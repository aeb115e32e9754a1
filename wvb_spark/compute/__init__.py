"""numpy, pandas and Arrow code with no Spark: metrics, answer parsing, model-output
formats, figures. Called from pandas UDFs and on the driver alike."""
