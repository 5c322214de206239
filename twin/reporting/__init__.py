"""Cockpits of the admin areas, decision reports and their rendering, and the charts in them."""
