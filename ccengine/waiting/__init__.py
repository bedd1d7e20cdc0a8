"""Waiting callers: position announcements, wait estimates, callbacks that keep their place (issue 3)."""
