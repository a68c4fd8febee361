"""The DPA portal: sub-processors, data processing agreements, notices and AI commitments for a data processor."""
