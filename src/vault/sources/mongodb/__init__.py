"""MongoDB as a source: BSON capture, restore document by document, secrets, and
`mongodump --archive` files read as its items."""
