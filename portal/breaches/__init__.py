"""Personal-data breaches: the incident register, Art. 33(3) notices to each affected client, clocks and updates."""
