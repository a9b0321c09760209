"""The failures gan_jax reports with a message instead of a traceback, and their exit codes."""


class GanJaxError(Exception):
    """A failure whose message says what went wrong and how to fix it."""

    exit_code = 1


# A process of a multi-process run whose failure is another process's (distributed.ProcessFailed):
# the launcher reports the cause's code instead.
OTHER_PROCESS_FAILED = 5


class ConfigError(GanJaxError, ValueError):
    """A composed config breaks a rule; the message names the key and the valid values."""

    exit_code = 2


class RunDirectoryInUse(GanJaxError):
    """Another process owns the run directory; the message names it."""

    exit_code = 4


class TrainingDiverged(GanJaxError, RuntimeError):
    """A loss or D output became NaN or infinite; the run directory keeps what was written."""

    exit_code = 3
