"""The one picture of Asterisk's queues (picture.py) and the one AMI feed that keeps it (feed.py)."""
