"""A local OpenAI-compatible transcription endpoint (`python -m asr serve`), private by default.

Modules, in the order a request meets them: `settings` (what it was started with), `security` (Host, Origin,
key and size checks), `form` (the multipart body and its fields), `queue` (the engine's turn), `openai_format`
(the response bodies), `app` (the routes), `serve` (model, socket, uvicorn). docs/server.md has the detail.
"""
