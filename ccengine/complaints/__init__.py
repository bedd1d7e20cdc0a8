"""Complaints (issue 5): tickets with deadlines, warm escalation, waiting complainants, follow-ups."""
