"""The daily refresh: crontab parsing (:mod:`.cron`, no APScheduler needed to validate a config) and
the APScheduler job that runs the sync (:mod:`.scheduler`), once per server process or in the
foreground. Nothing is imported here: loading a config imports :mod:`.cron` alone."""
