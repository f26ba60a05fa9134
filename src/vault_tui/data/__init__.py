"""What the screens show, read from the journal and the repository: plain functions that
take a TuiContext and return plain data. They run in worker threads, never on the UI loop,
and never import Textual, so they are tested like any other function."""
