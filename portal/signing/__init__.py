"""Signing: the ceremony, evidence records and their seal, PDF copies, bundles and verification."""
