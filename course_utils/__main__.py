"""``python -m course_utils``: say where the data set is and whether it is intact."""

from .data import main

raise SystemExit(main())
