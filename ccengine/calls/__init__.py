"""The caller's path: hotline IVR, caller recognition, routing decisions, call records."""
