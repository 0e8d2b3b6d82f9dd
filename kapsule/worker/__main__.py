"""``python -m kapsule.worker``: run the job named by ``KAPSULE_JOB_ID`` (see ``run_job``)."""

import sys

from kapsule.worker.run_job import main

sys.exit(main())
