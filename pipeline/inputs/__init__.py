"""Reading seed records from files and the built-in text sources."""
