"""Trigger sources: one adapter per platform envelope, turning an event into an Invocation (triggers.detect).

Modules: model (Invocation, InboundMessage, HttpRequest, errors), detect (parse_event), yandex, aws (the
envelopes), http (request normalisation, body decoding, replies), queue (batch failure replies).
Nothing here imports boto3 or powertools: importing triggers.detect costs only pydantic.
"""
