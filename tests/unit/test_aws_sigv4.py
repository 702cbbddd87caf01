"""adapters.aws's Signature Version 4 against botocore's own SigV4Auth (the oracle): same request, same time,
same credentials -> the same Authorization, X-Amz-Date and X-Amz-Security-Token headers."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.aws import region_of_host
from adapters.sigv4 import Credentials, canonical_query, host_header, sign_v4

NOW = datetime(2026, 12, 1, 21, 30, 5, tzinfo=UTC)

labels = st.text(string.ascii_letters + string.digits, min_size=1, max_size=12)
hosts = st.one_of(
    st.lists(labels, min_size=1, max_size=4).map(".".join),
    st.sampled_from(["127.0.0.1", "[::1]", "message-queue.api.cloud.yandex.net", "sqs.eu-west-1.amazonaws.com"]),
)
ports = st.one_of(st.none(), st.sampled_from([80, 443, 8080]), st.integers(1, 65535))
segment = st.text(string.ascii_letters + string.digits + "-._~ %!$&'()*+,;=:@" + "éü☃", max_size=10)
paths = st.lists(st.one_of(segment, st.sampled_from([".", "..", ""])), max_size=5).map(lambda s: "/" + "/".join(s))
query = st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=4)
header_names = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=12).filter(
    lambda n: n.lower() not in ("host", "authorization", "date") and not n.lower().startswith("x-amz-")
)
header_values = st.text(string.printable.replace("\n", "").replace("\r", "").replace("\x0b", "").replace("\x0c", ""))
headers = st.dictionaries(header_names, header_values, max_size=4).map(
    lambda h: {k: v for k, v in {name.lower(): (name, value) for name, value in h.items()}.values()}
)
tokens = st.one_of(st.none(), st.text(string.ascii_letters + string.digits + "/+=", min_size=1, max_size=40))
secrets = st.text(string.ascii_letters + string.digits + "/+", min_size=1, max_size=40)


def oracle(method, url, hdrs, body, params, key, secret, token, region, service):
    request = AWSRequest(method=method, url=url, data=body, headers=dict(hdrs), params=list(params))
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        SigV4Auth(BotoCredentials(key, secret, token), service, region).add_auth(request)
    return {name: request.headers.get(name) for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")}


def ours(method, url, hdrs, body, params, key, secret, token, region, service):
    signed = sign_v4(
        method, url, hdrs, body, credentials=Credentials(key, secret, token), region=region, service=service,
        now=NOW, params=params,
    )  # fmt: skip
    return {name: signed.get(name) for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")}


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["POST", "GET", "put"]),
    scheme=st.sampled_from(["http", "https"]),
    host=hosts,
    port=ports,
    path=paths,
    params=query,
    hdrs=headers,
    body=st.binary(max_size=200),
    token=tokens,
    secret=secrets,
    region=st.sampled_from(["us-east-1", "ru-central1", "eu-west-3"]),
    service=st.sampled_from(["sqs", "secretsmanager"]),
)
def test_the_signature_is_botocores(
    method, scheme, host, port, path, params, hdrs, body, token, secret, region, service
):
    url = f"{scheme}://{host}{'' if port is None else f':{port}'}{path}"
    args = (method, url, hdrs, body, params, "AKIDEXAMPLE", secret, token, region, service)
    assert ours(*args) == oracle(*args)


def test_a_json_protocol_request_as_the_client_sends_it():
    hdrs = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "AmazonSQS.SendMessageBatch",
        "x-amzn-query-mode": "true",
        "User-Agent": "not signed",
    }
    args = (
        "POST",
        "https://sqs.us-east-1.amazonaws.com/",
        hdrs,
        b'{"QueueUrl":"q"}',
        [],
        "AKID",
        "s",
        "t",
        "us-east-1",
        "sqs",
    )
    mine = ours(*args)
    assert mine == oracle(*args)
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target;x-amzn-query-mode," in str(
        mine["Authorization"]
    )


def test_the_host_header_drops_only_default_ports():
    assert host_header("https://Example.COM:443/x") == "example.com"
    assert host_header("http://example.com:443/") == "example.com:443"
    assert host_header("http://[::1]:8080/") == "[::1]:8080"


def test_a_changed_byte_changes_the_signature():
    base = ("POST", "https://h/", {}, b"{}", [], "AKID", "secret", None, "us-east-1", "sqs")
    other = ("POST", "https://h/", {}, b"{ }", [], "AKID", "secret", None, "us-east-1", "sqs")
    assert ours(*base)["Authorization"] != ours(*other)["Authorization"]


@pytest.mark.parametrize(
    ("host", "region"),
    [
        ("message-queue.api.cloud.yandex.net", "ru-central1"),
        ("sqs.eu-central-1.amazonaws.com", "eu-central-1"),
        ("secretsmanager.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        ("sqs.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        ("127.0.0.1", None),
        ("queue.amazonaws.com", None),
    ],
)
def test_the_region_read_from_an_endpoint_host(host, region):
    assert region_of_host(host) == region


@given(st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=5))
def test_the_canonical_query_is_sorted_and_fully_encoded(params):
    text = canonical_query(params)
    pairs = [pair.split("=") for pair in text.split("&")] if text else []
    assert pairs == sorted(pairs) and all(len(p) == 2 for p in pairs)
    assert set(text) <= set(string.ascii_letters + string.digits + "-_.~%=&")
