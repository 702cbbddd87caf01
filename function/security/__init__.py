"""Request authentication and URL safety, shared by the HTTP front and the result sinks (no domain, no chatops).

- `common`: the errors (401 / 400 / 413), header and body helpers, the timestamp window;
- `hmac_v1`: the ONE HMAC-SHA256 `v1=` signer and its verifiers (incoming `POST /backup` and
  `GET /backup/{operationId}`, and the receiver side of the signed result webhook);
- `slack`: Slack's v0 request signature;
- `urls`: which URLs a message may make us post to (Slack's `response_url`);
- `http_auth`: the gate every HTTP request passes, for the route the front decided.
"""
