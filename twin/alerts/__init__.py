"""Alert rules, the indicators they watch, their evaluation, and the refresh that runs them after
new data."""
