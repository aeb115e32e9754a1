"""spark-submit entry point for `wvb baselines`: the same options as the CLI, e.g.

    spark-submit --master spark://host:7077 --py-files dist/wvb_spark-<version>.zip \
      jobs/baselines.py --warehouse /shared/wvb ...

The session is spark-submit's. wvb_spark reaches driver and executors as the zip of
`make dist` (--py-files takes .zip, not wheels); its dependencies must be on the nodes
or come with --archives dist/env.tar.gz#env (`make dist-env`). jobs/pipeline.sh runs
every stage this way; README "Running on a cluster" has the whole recipe.
"""

import sys

try:
    from wvb_spark.cli import main
except ModuleNotFoundError as error:
    sys.exit(
        f"jobs/baselines.py: cannot import {error.name}: pass --py-files dist/wvb_spark-<version>.zip "
        f"(make dist) and make the dependencies importable (make dist-env)"
    )

if __name__ == "__main__":
    sys.exit(main(["baselines", *sys.argv[1:]]))
