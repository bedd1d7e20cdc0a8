"""The one AMI feed of the queue side (ccengine/queues/feed.py) with every feature wired as
app.py wires them, on a real AmiClient answered with ami4's recorded login: one QueueStatus per
login, one subscription per event, and the features fed from it."""
from __future__ import annotations

import pytest_twisted

import ami_replay
from ccengine.app import build_features
from ccengine.config import load_config
from ccengine.feature import EngineContext
from ccengine.prompts.catalogue import load_catalogue
from ccengine.prompts.metrics import PromptMetrics
from ccengine.prompts.player import Prompter
from ccengine.queues.feed import EVENTS, QueueFeed
from ccengine.queues.picture import QueuePicture
from ccengine.store.base import RedisConnection

def wired(redis_url):
    harness = ami_replay.ClientHarness()
    config = load_config(None)
    catalogue = load_catalogue(config.prompts, company=config.company.name,
                               languages=config.company.languages,
                               default_language=config.company.default_language)
    conn = RedisConnection(redis_url)
    ctx = EngineContext(config=config, clock=harness.clock, registry=harness.registry,
                        redis=conn, ami=harness.client,
                        prompter=Prompter(catalogue, PromptMetrics(harness.registry)),
                        queues=QueueFeed(harness.client, QueuePicture(harness.clock)))
    for feature in build_features(ctx):
        for callback in feature.on_ami_connected:
            harness.client.on_connected(callback)
    return harness, ctx, conn


@pytest_twisted.ensureDeferred
async def test_one_queuestatus_per_login_and_one_subscription_per_event(redis_url):
    """After a login replay exactly one QueueStatus is sent (the feed's; the agents' resync, the
    statistics and the waiting feature used to send one each), and each queue event has one
    subscriber on the AMI client: the feed. Only OriginateResponse (the dialler) is subscribed
    besides; AttendedTransfer goes through the feed (only the owner of its server acts on it,
    ami.shared)."""
    harness, ctx, conn = wired(redis_url)
    harness.login()
    actions = [m["Action"] for m in harness.written()]
    assert actions.count("QueueStatus") == 1
    subscribers = harness.client._subscribers
    assert {name: len(subscribers[name.lower()]) for name in EVENTS} == {n: 1 for n in EVENTS}
    assert set(subscribers) - {n.lower() for n in EVENTS} == {"originateresponse"}
    harness.close()                                  # a reconnect: one more, not three
    harness.clock.advance(1.0)
    harness.login()
    assert [m["Action"] for m in harness.written()].count("QueueStatus") == 1
    await conn.close()


@pytest_twisted.ensureDeferred
async def test_the_answer_reaches_the_picture_and_the_statistics(redis_url):
    """The recorded QueueStatus of d_queuestatus_waiting_caller, answered to the feed's
    action, becomes the picture (agents 1001 and 1002 staffing and free, one caller waiting) and
    the statistics' waiting gauge."""
    harness, ctx, conn = wired(redis_url)
    harness.login()
    status = [m for m in ami_replay.received_messages("d_queuestatus_waiting_caller")
              if m.action_id == "lab-6"]                # the capture's QueueStatus answer
    queuestatus = [m for m in harness.written() if m["Action"] == "QueueStatus"][0]
    harness.receive([ami_replay.retag(m, queuestatus.action_id) for m in status])
    picture = ctx.queues.picture
    assert (picture.staffing("inbound"), picture.available("inbound")) == (2, 2)
    assert [c.uniqueid for c in picture.waiting("inbound")] == ["cclab-1795364647.6"]
    assert harness.registry.get_sample_value("ccengine_queue_waiting_calls",
                                             {"queue": "inbound"}) == 1
    await conn.close()
