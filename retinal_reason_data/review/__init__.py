"""The review page: `rrd review RECIPE` serves the build's traces to annotators, whose verdicts land in
`annotations/` (see retinal_reason_data.annotations)."""
