"""The orchestration of a run: Ray start-up, placement of the workers, data loading, resume, the
stage pipeline, and the checks that run before any work starts. The only package that assembles
the others; nothing below imports it."""
