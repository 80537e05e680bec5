"""The HostPMS webhook receiver: verify, deduplicate and durably land each event.

``receiver.create_app`` (ASGI), ``server.serve`` (uvicorn), ``lambda_handler.handler``
(AWS Lambda); see ``docs/webhooks.md``.
"""
