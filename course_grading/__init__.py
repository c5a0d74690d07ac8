"""Instructor-only tooling: the nbgrader pipeline and parallel, sandboxed grading."""
