"""Column contracts of the warehouse tables (see README: Tables).

Transforms end with ``select(*columns(SCHEMA))`` so a table's columns are
decided here and nowhere else.
"""

from __future__ import annotations

from pyspark.sql import types as T

from wvb_spark.core import metadata


def columns(schema: T.StructType) -> list[str]:
    return [field.name for field in schema.fields]


QUESTIONS = T.StructType(
    [
        T.StructField("question_id", T.StringType(), False),
        T.StructField("text", T.StringType(), False),
        T.StructField("category", T.StringType(), False),
        T.StructField("use_case", T.StringType(), False),  # value | demographic
        T.StructField("scale_min", T.IntegerType(), True),
        T.StructField("scale_max", T.IntegerType(), True),
        T.StructField("data_type", T.StringType(), False),  # ordinal | non_ordinal
        T.StructField("labels", T.MapType(T.IntegerType(), T.StringType()), True),  # code -> codebook label
        T.StructField("is_probe", T.BooleanType(), False),
    ]
)


def demographic_text_columns() -> list[str]:
    """One text column per demographic variable in `participants`, named as in the WVS file."""
    return [v for v in metadata.demographic_variables() if v != "D_INTERVIEW"]


def participants_schema() -> T.StructType:
    fixed = [
        T.StructField("d_interview", T.LongType(), False),
        T.StructField("split", T.StringType(), False),  # train | test | valid
        T.StructField("country_code", T.IntegerType(), False),  # B_COUNTRY
        T.StructField("country", T.StringType(), True),
        T.StructField("continent", T.StringType(), True),
        T.StructField("urban_rural", T.StringType(), True),  # Urban | Rural | null
        T.StructField("education_level", T.StringType(), True),  # 4 levels | null
        T.StructField("sex", T.StringType(), True),
        T.StructField("age", T.IntegerType(), True),
        T.StructField("weight", T.DoubleType(), True),  # W_WEIGHT
        T.StructField("equilibrated_weight", T.DoubleType(), True),  # S018
        T.StructField("source_row", T.LongType(), False),  # 1-based data row in the raw file
    ]
    texts = [T.StructField(name, T.StringType(), True) for name in demographic_text_columns()]
    return T.StructType(fixed + texts)


EXAMPLES = T.StructType(
    [
        T.StructField("d_interview", T.LongType(), False),
        T.StructField("question_id", T.StringType(), False),
        T.StructField("answer", T.IntegerType(), False),
        T.StructField("split", T.StringType(), False),
    ]
)

QUARANTINE = T.StructType(
    [
        T.StructField("stage", T.StringType(), False),  # build | predictions
        T.StructField("source", T.StringType(), False),  # file name and row, e.g. wvs.csv:1234
        T.StructField("source_row", T.LongType(), True),
        T.StructField("d_interview", T.LongType(), True),
        T.StructField("question_id", T.StringType(), True),
        T.StructField("raw_value", T.StringType(), True),
        T.StructField("reason", T.StringType(), False),
    ]
)

PREDICTIONS = T.StructType(
    [
        T.StructField("model", T.StringType(), False),
        T.StructField("question_id", T.StringType(), True),
        T.StructField("d_interview", T.LongType(), True),
        T.StructField("raw_score", T.StringType(), True),  # what the file said, verbatim
        T.StructField("score", T.DoubleType(), True),  # parsed number, null if none
        T.StructField("status", T.StringType(), False),  # see PREDICTION_STATUSES
        T.StructField("distribution", T.ArrayType(T.DoubleType()), True),  # P(scale_min..scale_max)
        T.StructField("parse_method", T.StringType(), True),
        T.StructField("source", T.StringType(), True),
        # a distribution's mass that fell off the scale and was left out before normalising
        # (other tokens' probability; the unusable share of sampled answers)
        T.StructField("off_scale_mass", T.DoubleType(), True),
        T.StructField("n_samples", T.IntegerType(), True),  # sampled answers behind a distribution
        T.StructField("n_unusable", T.IntegerType(), True),  # of which no score could be read
    ]
)

PREDICTION_STATUSES = (
    "valid",
    "missing",
    "non_numeric",
    "non_integer",
    "out_of_range",
    "unknown_question",
    "unknown_participant",
    "duplicate",
)


def _field(name: str, data_type: T.DataType) -> T.StructField:
    return T.StructField(name, data_type, True)


_COUNTS = T.MapType(T.StringType(), T.LongType())
BUILD_RUNS = T.StructType(
    [
        _field("run_number", T.LongType()),
        _field("finished_at", T.TimestampType()),
        _field("raw_file", T.StringType()),
        _field("split_method", T.StringType()),
        _field("rows_read", T.LongType()),
        _field("participants", T.LongType()),
        _field("quarantined_rows", T.LongType()),
        _field("quarantined_rows_by_reason", _COUNTS),
        _field("quarantined_cells", T.LongType()),
        _field("missing_cells_by_code", _COUNTS),
        _field("examples", T.LongType()),
        _field("examples_by_split", _COUNTS),
        _field("table_versions", _COUNTS),  # the build's version of each table: what readers read
        _field("seconds", T.DoubleType()),
        _field("wvb_version", T.StringType()),
        _field("spark_version", T.StringType()),
    ]
)

HISTOGRAMS = T.StructType(
    [
        T.StructField("model", T.StringType(), False),
        T.StructField("side", T.StringType(), False),  # human | model
        T.StructField("question_id", T.StringType(), False),
        T.StructField("group_by", T.StringType(), False),
        T.StructField("group_value", T.StringType(), False),
        T.StructField("scale_min", T.IntegerType(), False),
        T.StructField("scale_max", T.IntegerType(), False),
        T.StructField("points", T.ArrayType(T.DoubleType()), False),  # answer value of each count
        T.StructField("counts", T.ArrayType(T.DoubleType()), False),  # count / weight sum per point
        T.StructField("n", T.LongType(), False),  # respondents (pairs), unweighted
    ]
)

DISTANCES = T.StructType(
    [
        T.StructField("model", T.StringType(), False),
        T.StructField("question_id", T.StringType(), False),
        T.StructField("group_by", T.StringType(), False),
        T.StructField("group_value", T.StringType(), False),
        T.StructField("n_human", T.LongType(), False),
        T.StructField("n_model", T.LongType(), False),
        T.StructField("n_listed", T.LongType(), False),
        T.StructField("n_invalid", T.LongType(), False),
        T.StructField("w1", T.DoubleType(), True),
        T.StructField("w1_ci_low", T.DoubleType(), True),
        T.StructField("w1_ci_high", T.DoubleType(), True),
        T.StructField("jsd", T.DoubleType(), True),
        T.StructField("tv", T.DoubleType(), True),
        T.StructField("representativeness", T.DoubleType(), True),
        T.StructField("noise_floor", T.DoubleType(), True),
        T.StructField("within_noise_floor", T.BooleanType(), True),
        T.StructField("invalid_rate", T.DoubleType(), True),
        T.StructField("invalid_by_status", T.MapType(T.StringType(), T.LongType()), True),
    ]
)

SUMMARY = T.StructType(
    [
        T.StructField("model", T.StringType(), False),
        T.StructField("group_by", T.StringType(), False),
        T.StructField("group_value", T.StringType(), False),
        T.StructField("threshold", T.DoubleType(), False),
        T.StructField("pct_questions_below", T.DoubleType(), True),
        T.StructField("ci_low", T.DoubleType(), True),
        T.StructField("ci_high", T.DoubleType(), True),
        T.StructField("mean_w1", T.DoubleType(), True),
        T.StructField("invalid_rate", T.DoubleType(), True),
        T.StructField("n_questions", T.LongType(), False),
    ]
)
