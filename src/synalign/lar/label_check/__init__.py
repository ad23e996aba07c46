"""Label checks: drop synthetic samples whose label the real texts contradict."""
