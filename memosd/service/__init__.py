"""Running memosd as a system service: systemd notification and watchdog."""
