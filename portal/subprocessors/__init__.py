"""The sub-processor registry, its published versions, and clients' authorisations and objections."""
