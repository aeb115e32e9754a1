"""Column contracts of the warehouse tables (see README: Tables).

Transforms end with ``select(*columns(SCHEMA))`` so a table's columns are
decided here and nowhere else.
"""

from __future__ import annotations

from pyspark.sql import types as T

from wvb_spark import metadata

def columns(schema: T.StructType) -> list[str]:
    return [field.name for field in schema.fields]


QUESTIONS = T.StructType([
    T.StructField("question_id", T.StringType(), False),
    T.StructField("text", T.StringType(), False),
    T.StructField("category", T.StringType(), False),
    T.StructField("use_case", T.StringType(), False),          # value | demographic
    T.StructField("scale_min", T.IntegerType(), True),
    T.StructField("scale_max", T.IntegerType(), True),
    T.StructField("data_type", T.StringType(), False),         # ordinal | non_ordinal
    T.StructField("labels", T.MapType(T.IntegerType(), T.StringType()), True),  # code -> codebook label
    T.StructField("is_probe", T.BooleanType(), False),
])


def demographic_text_columns() -> list[str]:
    """One text column per demographic variable in `participants`, named as in the WVS file."""
    return [v for v in metadata.demographic_variables() if v != "D_INTERVIEW"]


def participants_schema() -> T.StructType:
    fixed = [
        T.StructField("d_interview", T.LongType(), False),
        T.StructField("split", T.StringType(), False),          # train | test | valid
        T.StructField("country_code", T.IntegerType(), False),  # B_COUNTRY
        T.StructField("country", T.StringType(), True),
        T.StructField("continent", T.StringType(), True),
        T.StructField("urban_rural", T.StringType(), True),     # Urban | Rural | null
        T.StructField("education_level", T.StringType(), True), # 4 levels | null
        T.StructField("sex", T.StringType(), True),
        T.StructField("age", T.IntegerType(), True),
        T.StructField("weight", T.DoubleType(), True),          # W_WEIGHT
        T.StructField("equilibrated_weight", T.DoubleType(), True),  # S018
        T.StructField("source_row", T.LongType(), False),       # 1-based data row in the raw file
    ]
    texts = [T.StructField(name, T.StringType(), True) for name in demographic_text_columns()]
    return T.StructType(fixed + texts)


EXAMPLES = T.StructType([
    T.StructField("d_interview", T.LongType(), False),
    T.StructField("question_id", T.StringType(), False),
    T.StructField("answer", T.IntegerType(), False),
    T.StructField("split", T.StringType(), False),
])

QUARANTINE = T.StructType([
    T.StructField("stage", T.StringType(), False),        # build | predictions
    T.StructField("source", T.StringType(), False),       # file name and row, e.g. wvs.csv:1234
    T.StructField("source_row", T.LongType(), True),
    T.StructField("d_interview", T.LongType(), True),
    T.StructField("question_id", T.StringType(), True),
    T.StructField("raw_value", T.StringType(), True),
    T.StructField("reason", T.StringType(), False),
])

PREDICTIONS = T.StructType([
    T.StructField("model", T.StringType(), False),
    T.StructField("question_id", T.StringType(), True),
    T.StructField("d_interview", T.LongType(), True),
    T.StructField("raw_score", T.StringType(), True),      # what the file said, verbatim
    T.StructField("score", T.DoubleType(), True),          # parsed number, null if none
    T.StructField("status", T.StringType(), False),        # see PREDICTION_STATUSES
    T.StructField("distribution", T.ArrayType(T.DoubleType()), True),  # P(scale_min..scale_max)
    T.StructField("parse_method", T.StringType(), True),
    T.StructField("source", T.StringType(), True),
])

PREDICTION_STATUSES = ("valid", "missing", "non_numeric", "non_integer", "out_of_range",
                       "unknown_question", "unknown_participant", "duplicate")
