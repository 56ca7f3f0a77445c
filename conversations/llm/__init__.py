"""The LLM client (the only module importing `openai`), prices and the LLMCall ledger."""
