"""Agreements between the vendor and its clients: the terms other capabilities act on (notice periods, the
sub-processor authorisation option)."""
