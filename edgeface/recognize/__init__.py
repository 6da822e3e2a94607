"""Device half: the enrolment gallery (SQLite) and the camera/video recognition loop."""
