"""AmiClient (ClientService, login, keepalive, subscribers) on a fake endpoint and task.Clock.

Asterisk's side is replayed from tests/fixtures/ami/ copies of ../shared/asterisk/transcripts2
(ami4_login_ping_events: login OK / wrong secret; ami10_restart: restart seen by a client) and
transcripts (c_member_actions, d_queuestatus_waiting_caller, a_answered).
"""
from __future__ import annotations



import ami_replay
from ami_replay import ClientHarness
from ccengine.ami import (AmiConnectionLost, AmiNotConnected, AmiSettings, Message,
                          UnsafeAmiValue)
from deferred_results import failure_of as _failure, result_of as _result


def test_login_sends_credentials_after_the_banner_and_connects():
    """After the banner the client sends Login (Username, Secret, Events: the classes of the
    events it reads: agent,call,dialplan,system); the ami4 answer
    marks it connected, sets the gauge and runs on_connected."""
    harness = ClientHarness(secret="lab-secret")
    calls = []
    harness.client.on_connected(lambda: calls.append(harness.client.connected))
    assert harness.transport.value() == b"" and not harness.client.connected
    harness.receive(b"Asterisk Call Manager/11.0.0\r\n")
    login = harness.written()[-1]
    assert login.items() == [("Action", "Login"), ("Username", "ccengine"),
                             ("Secret", "lab-secret"), ("Events", "agent,call,dialplan,system"),
                             ("ActionID", "cc1-1")]
    harness.answer(ami_replay.received_messages("ami4_login_ping_events", "c1")[0])
    assert harness.client.connected and calls == [True]
    assert harness.sample("ccengine_ami_connected", server="asterisk") == 1
    assert harness.sample("ccengine_ami_reconnects_total", server="asterisk") == 0


def test_failed_login_is_logged_without_secret_and_retried_with_backoff():
    """A wrong secret (`Authentication failed`, then EOF: ami4 c2) leaves the client disconnected,
    logs the refusal without the secret (in the engine's one logging system, twisted.logger,
    naming the server), and a new attempt follows after the backoff."""
    from twisted.logger import formatEvent, globalLogPublisher
    logged: list[str] = []

    def observer(event):
        logged.append(formatEvent(event))
    globalLogPublisher.addObserver(observer)
    harness = ClientHarness(AmiSettings(backoff_initial=0.5, backoff_max=30), secret="wrong-pw")
    connected = []
    harness.client.on_connected(lambda: connected.append(1))
    _, blocks = ami_replay.split_raw(ami_replay.raw_bytes("ami4_login_ping_events", 2))
    harness.receive(b"Asterisk Call Manager/11.0.0\r\n")
    refusal = Message.parse(blocks[1])
    assert refusal["Message"] == "Authentication failed"
    harness.answer(refusal)
    harness.close()  # Asterisk closes the TCP connection after the refusal
    assert not harness.client.connected and connected == []
    globalLogPublisher.removeObserver(observer)
    text = "\n".join(logged)
    assert "AMI 127.0.0.1:5038: login as 'ccengine' refused by Asterisk" in text
    assert "Authentication failed" in text and "wrong-pw" not in text
    assert len(harness.endpoint.connections) == 1
    harness.clock.advance(0.5)
    assert len(harness.endpoint.connections) == 2
    harness.receive(b"Asterisk Call Manager/11.0.0\r\n")
    harness.answer(refusal)
    harness.close()
    harness.clock.advance(0.9)
    assert len(harness.endpoint.connections) == 2  # second retry waits 1.0 s
    harness.clock.advance(0.1)
    assert len(harness.endpoint.connections) == 3
    harness.login()
    assert harness.client.connected and connected == [1]


def test_refused_connections_are_retried():
    """A refused TCP connect (Asterisk restarting, ami10) is retried with backoff."""
    harness = ClientHarness()
    assert len(harness.endpoint.connections) == 1
    harness.endpoint.refuse = 2
    harness.close()
    harness.clock.advance(0.5)
    harness.clock.advance(1.0)
    assert len(harness.endpoint.connections) == 1
    harness.clock.advance(2.0)
    assert len(harness.endpoint.connections) == 2


def test_actions_fail_fast_when_not_connected():
    """send_action and send_list_action fail with AmiNotConnected before login, writing nothing."""
    harness = ClientHarness()
    assert _failure(harness.client.send_action("Ping")).check(AmiNotConnected)
    assert _failure(harness.client.send_list_action("QueueStatus")).check(AmiNotConnected)
    assert harness.transport.value() == b""


def test_unsafe_field_value_is_refused_before_writing():
    """A CR/LF in a field value fails with UnsafeAmiValue and nothing is written."""
    harness = ClientHarness()
    harness.login()
    before = harness.transport.value()
    refused = harness.client.send_action(
        "Setvar", Variable="CC_CUSTOMER_NAME", Value="Eve\r\n\r\nAction: Originate")
    assert _failure(refused).check(UnsafeAmiValue)
    assert harness.transport.value() == before


def test_action_fields_in_order_and_response():
    """send_action writes the fields in order and fires with the response (c_member_actions)."""
    harness = ClientHarness()
    harness.login()
    pending = harness.client.send_action(
        "QueuePause", [("Queue", "supervisor"), ("Interface", "PJSIP/1005")],
        Paused="true", Reason="lunch")
    assert harness.written()[-1].items() == [
        ("Action", "QueuePause"), ("Queue", "supervisor"), ("Interface", "PJSIP/1005"),
        ("Paused", "true"), ("Reason", "lunch"), ("ActionID", "cc1-2")]
    recorded = [m for m in ami_replay.received_messages("c_member_actions")
                if m.action_id == "lab-4"]
    harness.answer(recorded)
    assert _result(pending)["Message"] == "Interface paused successfully"


def test_list_action_through_the_client():
    """send_list_action collects QueueStatus until QueueStatusComplete (d_queuestatus_waiting_caller)."""
    harness = ClientHarness()
    harness.login()
    pending = harness.client.send_list_action("QueueStatus", Queue="inbound")
    harness.answer([m for m in ami_replay.received_messages("d_queuestatus_waiting_caller")
                    if m.action_id == "lab-6"])
    assert _result(pending)[-1].event == "QueueStatusComplete"


def test_pending_action_fails_on_loss_and_is_not_resent():
    """An action pending when the connection drops fails with AmiConnectionLost; after the
    reconnect only the Login is written."""
    harness = ClientHarness()
    harness.login()
    pending = harness.client.send_action("QueueAdd", Queue="inbound", Interface="PJSIP/1001")
    harness.close()
    assert _failure(pending).check(AmiConnectionLost)
    assert not harness.client.connected
    assert harness.sample("ccengine_ami_connected", server="asterisk") == 0
    harness.clock.advance(0.5)
    harness.login()
    assert [m["Action"] for m in harness.written()] == ["Login"]
    assert harness.client.connected
    assert harness.sample("ccengine_ami_reconnects_total", server="asterisk") == 1


def test_keepalive_pings_and_drops_a_silent_connection():
    """Ping goes out every ping_interval; an unanswered Ping aborts the connection and a new
    connection follows after the backoff."""
    settings = AmiSettings(ping_interval=20, action_timeout=10, backoff_initial=0.5)
    harness = ClientHarness(settings)
    harness.login(with_events=False)
    harness.clock.advance(20)
    ping = harness.written()[-1]
    assert ping["Action"] == "Ping"
    pongs = [m for m in ami_replay.received_messages("ami4_login_ping_events", "c1")
             if m.get("Ping") == "Pong"]
    harness.answer(pongs[0])
    assert harness.client.connected
    harness.clock.advance(20)
    assert harness.written()[-1]["Action"] == "Ping"
    assert harness.written()[-1].action_id != ping.action_id
    first = harness.transport
    harness.clock.advance(10)  # Ping timed out: connection aborted, connectionLost next turn
    assert first.disconnecting
    harness.clock.advance(0)
    assert not harness.client.connected
    harness.clock.advance(0.5)
    assert harness.transport is not first
    harness.login()
    assert harness.client.connected


def test_subscribers_by_name_and_star():
    """Subscribers get events by name (case-insensitive) and '*' gets every event (a_answered)."""
    harness = ClientHarness()
    harness.login(with_events=False)
    joins, everything = [], []
    harness.client.subscribe("QueueCallerJoin", joins.append)
    unsubscribe = harness.client.subscribe("*", everything.append)
    recorded = ami_replay.received_messages("a_answered")
    harness.receive([m for m in recorded if m.event][:60])
    assert [m.event for m in joins] == ["QueueCallerJoin"]
    assert len(everything) == 60
    assert harness.sample("ccengine_ami_events_total", server="asterisk") == 60
    unsubscribe()
    harness.receive([joins[0]])
    assert len(everything) == 60 and len(joins) == 2


def test_raising_subscriber_does_not_stop_others():
    """A subscriber that raises is logged and counted; the others still get the event."""
    harness = ClientHarness()
    harness.login(with_events=False)
    seen = []

    def broken(message):
        raise KeyError("Queue")

    async def broken_async(message):
        raise ValueError("async handler bug")

    harness.client.subscribe("AgentCalled", broken)
    harness.client.subscribe("AgentCalled", broken_async)
    harness.client.subscribe("AgentCalled", seen.append)
    harness.client.subscribe("*", lambda m: seen.append(m.event))
    ami_replay.feed_client(harness.client, ami_replay.events("a_answered", "AgentCalled"))
    assert len(seen) == 4
    assert harness.sample("ccengine_ami_bad_events_total", server="asterisk", reason="handler_error") == 4


def test_fully_booted_after_restart_reaches_subscribers():
    """ami10: Shutdown then EOF; the client reconnects, logs in before boot ends and the
    broadcast FullyBooted (Uptime 0) reaches subscribers; on_connected runs again."""
    harness = ClientHarness()
    booted, resyncs = [], []
    harness.client.subscribe("FullyBooted", booted.append)
    harness.client.on_connected(lambda: resyncs.append(1))
    c1 = ami_replay.received_messages("ami10_restart", "c1")
    harness.receive(b"Asterisk Call Manager/11.0.0\r\n")
    harness.answer(c1[:3])
    assert [m["Uptime"] for m in booted] == ["246"]
    shutdown = [m for m in c1 if m.event == "Shutdown"]
    harness.receive(shutdown)
    harness.close()
    assert not harness.client.connected
    harness.endpoint.refuse = 1
    harness.clock.advance(0.5)
    harness.clock.advance(1.0)
    harness.receive(b"Asterisk Call Manager/11.0.0\r\n")
    c3 = ami_replay.received_messages("ami10_restart", "c3")
    assert [m.event or m.response for m in c3[:3]] == ["Success", "SuccessfulAuth", "FullyBooted"]
    harness.answer(c3[:2])
    assert harness.client.connected and resyncs == [1, 1] and len(booted) == 1
    harness.receive(c3[2:3])
    assert [m["Uptime"] for m in booted] == ["246", "0"]
    assert booted[1]["LastReload"] == "0"


def test_stop_service_disconnects_and_stops_pinging():
    """stopService closes the connection; no reconnect or Ping follows."""
    harness = ClientHarness()
    harness.login(with_events=False)
    harness.client.stopService()
    harness.clock.advance(0)
    assert not harness.client.connected
    harness.clock.advance(100)
    assert len(harness.endpoint.connections) == 1
    assert [m["Action"] for m in harness.written()] == ["Login"]


def test_silent_server_times_out_the_login_and_retries():
    """A server that accepts TCP but never sends the banner is dropped after action_timeout and
    retried after the backoff."""
    harness = ClientHarness(AmiSettings(action_timeout=10, backoff_initial=0.5))
    first = harness.transport
    harness.clock.advance(9.9)
    assert not first.disconnecting
    harness.clock.advance(0.1)
    assert first.disconnecting
    harness.clock.advance(0.5)
    assert harness.transport is not first
    harness.login()
    assert harness.client.connected


def test_bad_input_is_counted_by_reason():
    """Garbage and truncated blocks and unknown responses land in ccengine_ami_bad_events_total."""
    harness = ClientHarness()
    harness.login(with_events=False)
    harness.receive(b"no colon here\r\n\r\nEvent: QueueCallerLeave\r\nQueue: inb\r\n\r\n"
                    b"Response: Success\r\nActionID: cc9-9\r\n\r\n")
    assert harness.sample("ccengine_ami_bad_events_total", server="asterisk", reason="no_type") == 1
    assert harness.sample("ccengine_ami_bad_events_total", server="asterisk", reason="malformed_line") == 1
    assert harness.sample("ccengine_ami_bad_events_total", server="asterisk", reason="unknown_response") == 1
    assert harness.sample("ccengine_ami_events_total", server="asterisk") == 1
    assert harness.client.connected


def test_tcp_endpoint_uses_the_settings_address():
    """tcp_endpoint connects to the configured host and port."""
    from twisted.internet.protocol import Factory
    from twisted.internet.testing import MemoryReactor

    from ccengine.ami.client import tcp_endpoint
    reactor = MemoryReactor()
    tcp_endpoint(reactor, AmiSettings(host="10.0.0.5", port=5039)).connect(Factory())
    assert reactor.tcpClients[0][:2] == ("10.0.0.5", 5039)
