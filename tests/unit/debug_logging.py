"""Every logger at DEBUG for one test, and a handler that records every record, for the leak checks that must
see every record there is."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def every_logger_at_debug() -> Iterator[None]:
    """The root logger and every logger there is at DEBUG and enabled, restored after. Through setLevel, never
    by assigning ``.level``: setLevel clears the loggers' isEnabledFor cache, and a logger an earlier test used
    at WARNING (the integration tier's boto3 clients) would otherwise still drop DEBUG records, so a leak check
    would pass without seeing them."""
    root = logging.getLogger()
    loggers = [root, *(logger for logger in logging.Logger.manager.loggerDict.values()
                       if isinstance(logger, logging.Logger))]
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    try:
        yield
    finally:
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled


class Recorder(logging.Handler):
    """Every record any logger makes, at DEBUG, with its arguments."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(f"{record.getMessage()} {record.__dict__!r}")


@contextmanager
def recording_every_record() -> Iterator[Recorder]:
    """Every logger at DEBUG, and a Recorder on the root logger, for the block."""
    recorder = Recorder()
    root = logging.getLogger()
    with every_logger_at_debug():
        root.addHandler(recorder)
        try:
            yield recorder
        finally:
            root.removeHandler(recorder)
