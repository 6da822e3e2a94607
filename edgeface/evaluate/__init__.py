"""Device half: verification metrics (numpy only) and the LFW View 2 protocol."""
