"""Taskflow flows of the conductor: one persisted, resumable flow per migration."""
