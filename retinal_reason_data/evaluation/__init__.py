"""`rrd eval`: score an OpenAI-compatible model on a release with the release's own reward, and compare runs."""
