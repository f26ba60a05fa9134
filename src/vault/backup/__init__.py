"""The backup engine: files into a snapshot tree (`files`), a source's items into one
(`items`), and the files cache that skips unchanged files."""
