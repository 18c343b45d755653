"""One router per resource: runs (list, page, figure, downloads), progress (live JSON), compare."""
