"""The one place that wires the engine and imports the reactor.

`run(config)` installs Twisted's asyncio reactor (redis-py's asyncio client shares its loop),
resolves Redis (configured URL, else 127.0.0.1:6379 if it answers, else a private
redis-server child under the state directory), builds the shared context, asks each feature
for its parts and starts one MultiService: FastAGI server, AMI client, HTTP, feature services.
"""
from __future__ import annotations

import gc
import logging
import sys
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger, LogLevel, globalLogBeginner, textFileLogObserver

if TYPE_CHECKING:
    from ccengine.agi.server import FastAGIFactory

log = Logger()

def resolve_redis(config, embedded_factory=None):
    """(url, embedded-or-None). Pure process management: runs before the reactor starts."""
    from ccengine.store.embedded import EmbeddedRedis, redis_answers
    if config.redis.sentinels:
        return f"sentinel://{config.redis.service}", None
    if config.redis.url:
        return config.redis.url, None
    if redis_answers("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0", None
    factory = embedded_factory or EmbeddedRedis
    embedded = factory(config.state_dir / "redis").start()
    log.info("no Redis configured or answering on 127.0.0.1:6379: started a private "
             "redis-server on {url} (AOF, data in {dir})", url=embedded.url,
             dir=embedded.data_dir)
    return embedded.url, embedded


AGI_SERVICE = "fastagi"



def fastagi_factory(top) -> FastAGIFactory:
    """The FastAGIFactory of a service tree from `build_service` (the bench and tests drive
    it directly)."""
    return top.getServiceNamed(AGI_SERVICE).args[1]


def build_features(ctx) -> list:
    """Every feature, each given by name what the others provide (typed, no shared dict)."""
    from ccengine.agents import feature as agents
    from ccengine.calls import feature as calls
    from ccengine.complaints import feature as complaints
    from ccengine.console import feature as console
    from ccengine.outbound import feature as outbound
    from ccengine.stats import feature as stats
    from ccengine.calls.records import CallRecordStore
    from ccengine.waiting import feature as waiting

    records = CallRecordStore(ctx.redis, ctx.config.records.max_calls,
                              ctx.config.records.ttl_days)
    queue_stats = stats.build(ctx)
    waited = waiting.build(ctx, on_callback=queue_stats.stats.consumer.callback_taken)
    staff = agents.build(ctx)
    handled = complaints.build(ctx, records=records, directory=staff.directory)
    hotline = calls.build(ctx, records=records, closed_offer=waited.closed_offer,
                          repeat=handled.repeat, availability=waited.staffing)
    dialler = outbound.build(ctx, records=records, callbacks=waited.callbacks,
                             directory=staff.directory, states=staff.states)
    floor = console.build(ctx, stats=queue_stats, staff=staff, handled=handled, records=records,
                          callbacks=waited.callbacks)
    return [queue_stats, waited, staff, handled, hotline, dialler, floor]


def build_service(config, reactor, redis_url: str):
    """The engine's MultiService and its context (separated from run() for tests)."""
    from prometheus_client import CollectorRegistry
    from twisted.application import internet, service

    from ccengine.agi.metrics import AgiMetrics
    from ccengine.agi.server import FastAGIFactory, FastAGIServer
    from ccengine.feature import EngineContext
    from ccengine.runtime.lag import ReactorLagProbe
    from ccengine.prompts.catalogue import load_catalogue
    from ccengine.prompts.metrics import PromptMetrics
    from ccengine.prompts.player import Prompter
    from ccengine.queues.feed import QueueFeed
    from ccengine.queues.picture import QueuePicture
    from ccengine.store.base import RedisConnection, StoreMetrics
    from ccengine.web import Health, build_root, build_site

    registry = CollectorRegistry()
    top = service.MultiService()
    redis = RedisConnection.from_config(config.redis, redis_url, StoreMetrics(registry), reactor)
    company = config.company
    catalogue = load_catalogue(config.prompts, company=company.name,
                               languages=company.languages,
                               default_language=company.default_language)
    ami = _build_ami(config, reactor, registry)
    if ami is not None:
        ami.setServiceParent(top)
    feed = QueueFeed(ami, QueuePicture(reactor)) if ami is not None else None
    jobs = None
    ctx = EngineContext(config=config, clock=reactor, registry=registry, redis=redis, ami=ami,
                        prompter=Prompter(catalogue, PromptMetrics(registry)),
                        api_token=config.api_token(), queues=feed)
    if ami is not None and feed is not None and config.ami.shared:
        from ccengine.ami.owner import AmiOwnership, SingletonLease, owner_gauge
        gauge = owner_gauge(registry)
        owners = {name: AmiOwnership(redis, client, feed, config.engine.name, gauge)
                  for name, client in ami.clients.items()}
        for lease in owners.values():
            lease.setServiceParent(top)
        feed.counts = ctx.counts_events = lambda server: (
            owners[server].held if server in owners else False)
        jobs = SingletonLease(redis, ami, config.engine.name, registry)
        jobs.setServiceParent(top)
    _build_info(registry, config.engine.name)

    routes: dict[str, Any] = {}
    api_root = None
    features = build_features(ctx)
    agi = config.fastagi
    factory = FastAGIFactory({}, reactor, agi, AgiMetrics(registry))   # FastAgiConfig is AgiSettings
    agi_server = FastAGIServer(agi.port, factory, interface=agi.bind)
    agi_server.setName(AGI_SERVICE)
    agi_server.setServiceParent(top)

    health = Health(ami_connected=lambda: bool(ami and all(
                        client.connected for client in ami.clients.values())),
                    informational=frozenset({"redis_accepts_writes", "ami_owner",
                                             "jobs_owner", "ami_servers",
                                             "redis_master"}),
                    redis_reachable=lambda: _gauge_value(registry, "ccengine_redis_up") == 1,
                    fastagi_listening=lambda: bool(agi_server.running),
                    ami_required=ami is not None)
    root = build_root(registry, health, config.http.metrics_cache_seconds, reactor,
                      _thread_runner(reactor))
    api_root = root.children[b"api"]
    for feature in features:
        routes.update(feature.routes)
        for child in feature.services:
            child.setServiceParent(top)
        for child in feature.singletons:
            if jobs is None:
                child.setServiceParent(top)
            else:
                jobs.singletons.append(child)
        for name, resource in feature.api.items():
            api_root.putChild(name.encode("ascii"), resource)
        for name, resource in feature.pages.items():
            root.putChild(name.encode("ascii"), resource)
        for callback in feature.on_ami_connected:
            if ami is not None:
                ami.on_connected(callback)
        health.features.update(feature.health)
        ctx.on_reload.extend(feature.on_reload)
    if config.redis.sentinels:
        health.features["redis_master"] = lambda: redis.master
    if ami is not None:
        health.features["ami_servers"] = lambda: {
            name: client.connected for name, client in ami.clients.items()}
    if jobs is not None:
        health.features["ami_owner"] = lambda: sorted(
            name for name in ami.clients if ctx.counts_events(name))
        health.features["jobs_owner"] = lambda: jobs.held
    factory.routes.update(routes)
    site = build_site(root, config.http.max_body_bytes, config.http.max_connections,
                      config.http.header_timeout)
    internet.TCPServer(config.http.port, site, interface=config.http.bind).setServiceParent(top)
    internet.TimerService(5.0, _ping_redis, redis).setServiceParent(top)
    ReactorLagProbe(reactor, registry).setServiceParent(top)
    return top, ctx


# Collect the youngest generation every 10 000 net allocations instead of every 700. A call's
# objects are freed by reference counting when it ends (no reference cycles on the call path,
# tests/protocol/test_agi_no_cycles.py), so collecting more often finds nothing and only walks
# the objects of the calls in progress (the collector's share of the CPU with each threshold is
# in bench/README.md). What cycles the rarer paths make (a logged Failure's traceback) wait a
# little longer for the collector: a few MB at most.
GC_THRESHOLD = (10_000, 10, 10)


def tune_garbage_collector() -> None:
    """After start-up: freeze the start-up heap and collect the young generation less often.

    Modules, config, metric families and the features' objects live as long as the process.
    Left in the collector's oldest generation, every full collection walks them all with the
    reactor stopped, which is what set the whole-call p99 of the open-loop benchmark (figures in
    bench/README.md). After `gc.freeze()` a full collection walks
    only what was created since; garbage made later is collected as before."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def _build_info(registry, engine: str) -> None:
    """ccengine_build_info{version, engine}: which engine a scrape came from (one series per
    process, not a label on every series)."""
    from importlib.metadata import PackageNotFoundError, version
    from prometheus_client import Gauge
    try:
        release = version("ccengine")
    except PackageNotFoundError:
        release = "unknown"
    Gauge("ccengine_build_info", "The engine's version and name (engine.id, else host-pid)",
          ["version", "engine"], registry=registry).labels(release, engine).set(1)


def _thread_runner(reactor):
    """`in_thread(func, *args)` on the reactor's thread pool; None for a test's Clock."""
    from twisted.internet.threads import deferToThreadPool
    if not hasattr(reactor, "getThreadPool"):
        return None
    return lambda func, *args: deferToThreadPool(reactor, reactor.getThreadPool(), func, *args)


def install_reload_signal(reactor, reloads: list) -> None:
    """SIGHUP reloads what the engine reads from files (the caller lists) and never stops the
    engine (a daemon's HUP by default kills the process: calls in the IVR would lose their route)."""
    import signal

    def reload() -> None:
        log.info("SIGHUP: reloading the caller lists")
        for callback in reloads:
            callback()
    signal.signal(signal.SIGHUP, lambda signum, frame: reactor.callFromThread(reload))


def _ping_redis(redis) -> None:
    # The result is recorded by RedisConnection's metrics (ccengine_redis_up), read by /healthz.
    redis.ping().addErrback(lambda failure: log.warn("redis ping failed: {f}",
                                                     f=failure.getErrorMessage()))


def _gauge_value(registry, name: str) -> float | None:
    return registry.get_sample_value(name)


def _build_ami(config, reactor, registry):
    """AmiServers with one client per configured Asterisk server that has a secret; None
    when AMI is disabled or no server has one."""
    import os

    from ccengine.ami.client import AmiClient, AmiSettings, tcp_endpoint
    from ccengine.ami.metrics import AmiMetrics
    from ccengine.ami.servers import AmiServers

    if not config.ami.enabled:
        return None
    a = config.ami
    clients, phones = [], {}
    metrics = AmiMetrics(registry, a.server_list()[0].name)
    for server in a.server_list():
        secret = server.secret(os.environ)
        if not secret:
            log.warn("AMI {name}: no secret in ${env} (or its secret_file); its queue and agent "
                     "events will not be followed", name=server.name, env=server.secret_env)
            continue
        settings = AmiSettings(name=server.name, host=server.host, port=server.port,
                               username=server.username, action_timeout=a.action_timeout,
                               ping_interval=a.ping_interval,
                               backoff_initial=a.reconnect_initial,
                               backoff_max=a.reconnect_max)
        clients.append(AmiClient(settings, secret, clock=reactor,
                                 endpoint=tcp_endpoint(reactor, settings),
                                 metrics=metrics.for_server(server.name)))
        phones[server.name] = server.phones
    if not clients:
        log.warn("AMI disabled: no Asterisk server has a secret")
        return None
    return AmiServers(clients, phones)


class _ToTwistedLogger(logging.Handler):
    """Libraries (redis-py, asyncio, pyst2) log with the standard library; their records go
    into twisted.logger, the engine's one log, under the library's logger name."""

    LEVELS = {logging.DEBUG: LogLevel.debug, logging.INFO: LogLevel.info,
              logging.WARNING: LogLevel.warn, logging.ERROR: LogLevel.error,
              logging.CRITICAL: LogLevel.critical}

    def emit(self, record: logging.LogRecord) -> None:
        level = self.LEVELS.get(record.levelno, LogLevel.error)
        Logger(namespace=record.name).emit(level, "{message}", message=self.format(record))


def bridge_stdlib_logging(level: int = logging.WARNING) -> logging.Handler:
    """Route the standard library's root logger into twisted.logger (warnings and up)."""
    handler = _ToTwistedLogger(level)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(min(root.level or level, level))
    return handler


def run(config) -> int:
    from twisted.internet import asyncioreactor
    asyncioreactor.install()
    from twisted.internet import reactor

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    bridge_stdlib_logging()
    url, embedded = resolve_redis(config)
    try:
        top, ctx = build_service(config, reactor, url)
        top.startService()
    except BaseException:
        # A failed start leaves nothing running: not the private redis-server either.
        if embedded is not None:
            embedded.stop()
        raise
    tune_garbage_collector()
    install_reload_signal(reactor, ctx.on_reload)
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    if embedded is not None:
        reactor.addSystemEventTrigger("after", "shutdown", embedded.stop)
    log.info("ccengine running: FastAGI {agi}:{port}, HTTP http://{hb}:{hp}/healthz",
             agi=config.fastagi.bind, port=config.fastagi.port, hb=config.http.bind,
             hp=config.http.port)
    reactor.run()
    return 0
