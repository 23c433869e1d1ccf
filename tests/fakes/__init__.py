"""Fakes at the edge of the world: real local HTTP servers standing in for providers.

* `twilio_recorder.TwilioRecorder`: Twilio's REST API (point TWILIO_API_BASE at it).
* `graph_recorder.GraphRecorder`: Meta's Graph API for WhatsApp Cloud (WHATSAPP_GRAPH_BASE).
* `fixtures`: pytest fixtures `twilio_recorder` and `graph_recorder`; enable them with
  ``pytest_plugins = ["tests.fakes.fixtures"]`` in a conftest, or import them.

Each recorder: `start()`, `stop()`, `.base_url`, `.requests`, `.fail_next(status, body)`,
`.disconnect_next()`, `.wait_for(n)` / `await .wait_for_async(n)`, `.clear()`.
"""
