"""The teacher: prompts, the offline drafter, the OpenAI-compatible client and the synthesis stage."""
