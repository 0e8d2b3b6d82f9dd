"""One router per resource: health, uploads, jobs."""
