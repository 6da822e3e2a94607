"""Device half: dataset layouts and face preparation (detect + align + manifest)."""
