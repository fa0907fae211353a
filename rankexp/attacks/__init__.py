"""Robustness attacks on rankers (issue 16) and the CertDR defense; contracts in base.py."""
