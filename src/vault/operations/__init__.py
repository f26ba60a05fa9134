"""Operations: what a CLI command or a worker job does, journaled from request to outcome.

Each takes a `Vault` context and plain request data, runs the engine, and returns an
outcome the caller renders. None of them imports click or huey.
"""
