"""FastAGI: wire (pure grammar and quoting), protocol (framing), channel (typed commands),
server (routing by network script, watchdog)."""
