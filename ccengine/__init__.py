"""ccengine: a contact-center engine for Asterisk (FastAGI IVR, AMI state, Redis, Prometheus)."""
__version__ = "0.1.0"
