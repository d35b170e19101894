"""Property-based fuzzing of every loader and the command line (issue 13), with Hypothesis.

One settings object for all targets: derandomize=True makes every run (CI's included) draw the
same examples, so a failure reproduces and the suite's time is the same each run; no example
database is written; no deadline (a shared machine's pauses are not failures). Each test sets its
own max_examples so that the fuzz tests together stay within a few seconds (docs/reliability.md).
"""

from hypothesis import HealthCheck, settings

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


def one_line(message: str) -> bool:
    return bool(message) and "\n" not in message and "Traceback" not in message


def fuzz(max_examples: int) -> settings:
    """FUZZ with this target's number of examples."""
    return settings(FUZZ, max_examples=max_examples)
