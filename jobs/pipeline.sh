#!/usr/bin/env bash
# The benchmark on a Spark cluster: one spark-submit per stage, each running the thin entry
# point jobs/<stage>.py with the options of `wvb <stage>`. The cluster test
# (tests/test_cluster.py) and the submit container of docker/compose.yaml both run this
# script, so what the tests run is what the image runs.
#
#   jobs/pipeline.sh [STAGE ...]      stages: build probe baselines simulate-model predictions
#                                     evaluate report (default: all of them, in that order;
#                                     with your own model's file, leave out simulate-model)
#   jobs/pipeline.sh --print STAGE    print the stage's spark-submit command, run nothing
#
# Environment:
#   SPARK_MASTER      master URL, e.g. spark://127.0.0.1:7077                     (required)
#   WVB_WAREHOUSE     warehouse root, the same path for driver and executors      (required)
#   WVB_RAW           the raw WVS CSV, readable by driver and executors           (build)
#   WVB_MODEL, WVB_MODEL_FILE  the model and its answers file, written by simulate-model
#                     (a demo model with a known bias) and imported by predictions
#   WVB_OUT           report directory on the driver           [$WVB_WAREHOUSE/report]
#   WVB_PY_FILES      the package for --py-files               [dist/wvb_spark-<version>.zip]
#   WVB_ENV_ARCHIVE   packed dependencies (make dist-env): sent with --archives, executors run
#                     ./env/bin/python                         [executors use PYSPARK_PYTHON]
#   WVB_DELTA_JARS    comma list of Delta's jars: native Delta with its extension and catalog
#   WVB_DELTA_JARS_DIR  or the folder `wvb delta-jars` filled (its jars.txt lists them)
#                                                              [neither: the offline commit]
#   WVB_CONF          settings file                            [conf/cluster.yaml]
#   WVB_SET           space-separated KEY=VALUE settings, each passed as --set
#   WVB_SUBMIT_OPTIONS  more spark-submit options, space-separated (e.g. --executor-memory 1g)
#   SPARK_SUBMIT      the spark-submit to run                  [spark-submit]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
all_stages=(build probe baselines simulate-model predictions evaluate report)

need() {  # need VAR STAGE: a one-line error when a required variable is empty
  if [ -z "${!1:-}" ]; then
    echo "jobs/pipeline.sh: $1 is not set (needed for $2)" >&2
    exit 2
  fi
}

stage_arguments() {  # the options of `wvb <stage>` for STAGE
  case "$1" in
    build) need WVB_RAW build; printf '%s\n' --raw "$WVB_RAW" --warehouse "$WVB_WAREHOUSE" ;;
    probe | baselines | evaluate) printf '%s\n' --warehouse "$WVB_WAREHOUSE" ;;
    simulate-model)
      need WVB_MODEL_FILE simulate-model
      printf '%s\n' --warehouse "$WVB_WAREHOUSE" --out "$WVB_MODEL_FILE" --shift 1 --seed 7 ;;
    predictions)
      need WVB_MODEL predictions; need WVB_MODEL_FILE predictions
      printf '%s\n' import --warehouse "$WVB_WAREHOUSE" --model "$WVB_MODEL" --file "$WVB_MODEL_FILE" ;;
    report) printf '%s\n' --warehouse "$WVB_WAREHOUSE" --out "${WVB_OUT:-$WVB_WAREHOUSE/report}" ;;
    *) echo "jobs/pipeline.sh: unknown stage $1 (stages: ${all_stages[*]})" >&2; exit 2 ;;
  esac
}

submit_command() {  # the whole spark-submit command for STAGE, one word per line
  local stage="$1" py_files setting option arguments
  need SPARK_MASTER "$stage"; need WVB_WAREHOUSE "$stage"
  arguments="$(stage_arguments "$stage")" || exit $?   # the stage's own settings first
  py_files="${WVB_PY_FILES:-$(ls "$root"/dist/wvb_spark-*.zip 2>/dev/null | tail -n 1)}"
  if [ -z "$py_files" ]; then
    echo "jobs/pipeline.sh: no dist/wvb_spark-<version>.zip: run make dist, or set WVB_PY_FILES" >&2
    exit 2
  fi
  printf '%s\n' "${SPARK_SUBMIT:-spark-submit}" --master "$SPARK_MASTER" --py-files "$py_files"
  if [ -n "${WVB_ENV_ARCHIVE:-}" ]; then
    # Executors unpack the archive as ./env; the driver keeps its own Python.
    printf '%s\n' --archives "$WVB_ENV_ARCHIVE#env" --conf spark.pyspark.python=./env/bin/python \
      --conf "spark.pyspark.driver.python=${PYSPARK_DRIVER_PYTHON:-python3}"
  fi
  local jars="${WVB_DELTA_JARS:-}"
  if [ -z "$jars" ] && [ -n "${WVB_DELTA_JARS_DIR:-}" ]; then
    jars="$(sed "s|^|$WVB_DELTA_JARS_DIR/|" "$WVB_DELTA_JARS_DIR/jars.txt" | paste -sd, -)"
  fi
  if [ -n "$jars" ]; then
    printf '%s\n' --jars "$jars" \
      --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
      --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog
  fi
  for option in ${WVB_SUBMIT_OPTIONS:-}; do printf '%s\n' "$option"; done
  printf '%s\n' "$here/${stage//-/_}.py" "$arguments"
  printf '%s\n' --conf "${WVB_CONF:-$root/conf/cluster.yaml}"
  for setting in ${WVB_SET:-}; do printf '%s\n' --set "$setting"; done
}

run_stage() {
  local stage="$1" words command=()
  words="$(submit_command "$stage")"   # a missing setting stops the script here
  mapfile -t command <<< "$words"
  echo "== $stage: ${command[*]}" >&2
  "${command[@]}"
}

if [ "${1:-}" = "--print" ]; then
  words="$(submit_command "${2:?jobs/pipeline.sh --print STAGE}")"
  printf '%s\n' "$words"
  exit 0
fi
for stage in "${@:-${all_stages[@]}}"; do
  run_stage "$stage"
done
