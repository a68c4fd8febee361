"""DPA templates: the placeholder catalog they may use and the default agreement shipped in ``dpa_templates/``."""
