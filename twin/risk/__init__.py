"""The risk one map, alert rules, task dispatch and cockpits."""
