"""The engine logs through twisted.logger only; libraries' stdlib logging is bridged into it."""

def test_stdlib_logging_of_libraries_reaches_twisted_logger():
    """A library's stdlib warning (redis-py, asyncio) arrives in twisted.logger with its logger
    name as namespace and its level; debug records stay out (issue 18: one logging system)."""
    import logging

    from twisted.logger import LogLevel, formatEvent, globalLogPublisher

    from ccengine.app import bridge_stdlib_logging
    seen = []
    globalLogPublisher.addObserver(seen.append)
    handler = bridge_stdlib_logging()
    try:
        logging.getLogger("redis.connection").warning("lost %s", "127.0.0.1:6379")
        logging.getLogger("redis.connection").debug("noise")
    finally:
        logging.getLogger().removeHandler(handler)
        globalLogPublisher.removeObserver(seen.append)
    ours = [e for e in seen if e.get("log_namespace") == "redis.connection"]
    assert [(formatEvent(e), e["log_level"]) for e in ours] == [("lost 127.0.0.1:6379",
                                                                  LogLevel.warn)]
