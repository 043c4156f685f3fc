"""Agents: the builder (agents and immutable versions), executions on the `agents` queue through
LangChain against any OpenAI-compatible provider, token streaming, usage and quotas."""
