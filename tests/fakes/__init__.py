"""Real local servers standing in for external services (Meta's Graph API, ...)."""
