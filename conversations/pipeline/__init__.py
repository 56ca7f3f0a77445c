"""One AI turn: context from the database, prompts, the LLM calls, and persisting the result.

`context` reads, `prompts` and `turn` are pure (a context in, a draft out),
`service.turn_run` is the entry point that writes.
"""
