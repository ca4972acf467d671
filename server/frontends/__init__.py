"""Front ends other than the console (tui/): headless, which answers every held callback
with the fallback and prints a line per callback, and the non-blocking output it writes through."""
