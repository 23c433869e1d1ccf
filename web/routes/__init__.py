"""HTTP and websocket routes, grouped by audience."""
