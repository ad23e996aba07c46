"""Reports: statistics over seeds, plots from arrays, and the HTML rendering."""
