"""The wait estimator: pure functions, stated inputs and outputs."""
import pytest

from ccengine.config import WaitingConfig
from ccengine.waiting import estimator
from ccengine.waiting.numbers import NumberRejected, check_callback_number


def test_estimate_is_position_times_handling_time_over_staffing():
    """Position 3, 2 agents, talk times 100/200/300 s (mean 200): 3 * 200 / 2 = 300 s."""
    assert estimator.estimate_wait(3, 2, [100, 200, 300]) == 300.0


def test_callbacks_ahead_count_in_the_position():
    """Two callers and one callback ahead make position 4: 4 * 120 / 1 = 480 s."""
    assert estimator.estimate_wait(4, 1, [120]) == 480.0


def test_no_agents_means_no_estimate():
    """No agent staffing the queue (0) or no member data (None): None, not a made-up number."""
    assert estimator.estimate_wait(1, 0, [180]) is None
    assert estimator.estimate_wait(1, None, [180]) is None


def test_no_history_means_no_estimate():
    """No talk time recorded (or only zero-length calls): None."""
    assert estimator.estimate_wait(1, 3, []) is None
    assert estimator.estimate_wait(1, 3, [0, 0]) is None


def test_waiting_longer_than_the_average_does_not_grow_the_estimate():
    """A caller at position 1 with 2 agents and a 180 s mean hears 90 s whether they waited
    10 s or 600 s: the time already waited is not an input, the estimate only follows the
    position (here it shrinks from position 3 to 1 while the caller waits)."""
    after_10s = estimator.estimate_wait(3, 2, [180])
    after_600s = estimator.estimate_wait(1, 2, [180])
    assert (after_10s, after_600s) == (270.0, 90.0)


def test_spoken_minutes_round_up_and_never_say_zero():
    """20 s is 'about 1 minute', 61 s is 2 minutes, 120 s is 2 minutes."""
    assert [estimator.spoken_minutes(s) for s in (20, 61, 120)] == [1, 2, 2]


@pytest.mark.parametrize("number,reason", [
    ("123&PJSIP/x", "not_digits"), ("1@trunk", "not_digits"), ("abc", "not_digits"),
    ("1234", "too_short"), ("1" * 16, "too_long"), ("0044123456789", "international"),
    ("+8613800000000", "international"), ("9001234567", "premium"), ("", "not_digits"),
])
def test_bad_callback_numbers_are_refused_with_a_reason(number, reason):
    """Hostile and unusable numbers are refused before anything is stored (issue 8, item 3)."""
    with pytest.raises(NumberRejected) as err:
        check_callback_number(number, WaitingConfig())
    assert err.value.reason == reason


def test_allowed_prefixes_override_international_and_premium_denials():
    """An allow-listed prefix makes an international or premium number acceptable."""
    config = WaitingConfig(allowed_prefixes=("0044", "900"))
    assert check_callback_number("0044123456789", config) == "0044123456789"
    assert check_callback_number("9001234567", config) == "9001234567"
    assert check_callback_number("13800000001", WaitingConfig()) == "13800000001"
