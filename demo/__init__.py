"""The demo of the course: example submissions and the instructor's pipeline run on them.

``python -m demo.pipeline`` from the project folder (``make demo``). Not installed with the
package: the tests and benchmarks use its example answers and small courses from here.
"""
