"""spark-submit entry point for `wvb baselines`: same options as the CLI, e.g.

    spark-submit jobs/baselines.py --warehouse s3://bucket/wvb ...

The session is spark-submit's; wvb_spark must be importable on the driver and the
executors (pip install, or --py-files dist/wvb_spark-*.whl).
"""

import sys

from wvb_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["baselines", *sys.argv[1:]]))
