"""One screen per file; the app switches between the top-level ones as modes."""
