"""The LLM layer: models named in a job, engines (vLLM, OpenAI-compatible servers), prompts, requests and replies."""
