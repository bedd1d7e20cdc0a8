"""Agents on SIP phones: feature codes, agent state from AMI, resync and relog (issue 4)."""
