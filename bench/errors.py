"""User-facing errors. Each message says what is wrong and how to fix it.

The CLI prints a :class:`BenchError` as one clean line (no traceback) and exits with 2;
anything else is a bug and keeps its traceback.
"""


class BenchError(Exception):
    """Bad input that the user can fix: the message names the fix."""


class ConfigError(BenchError):
    """A malformed or inconsistent configuration."""


class DataError(BenchError):
    """A dataset that cannot be found or read."""


class ModelError(BenchError):
    """A model that is not registered or whose weights cannot be loaded."""


class TrainingError(BenchError):
    """Training diverged (NaN/inf loss) or otherwise cannot continue."""


class Interrupted(BaseException):
    """A signal (SIGINT, SIGTERM) stopped the run. A BaseException, like KeyboardInterrupt, so no
    ``except Exception`` swallows it; not a KeyboardInterrupt, which Lightning turns into exit 1."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class CacheError(BenchError):
    """A cache file failed its integrity check under ``cache.strict=true``."""
