"""The official `openai` client against `quiver serve frontend` (run by serve_openai.rs).

Usage: python serve_openai.py BASE_URL   (e.g. http://127.0.0.1:8000)
Prints one line per check and ALL OK at the end; any failure raises.
"""
import json
import sys
import urllib.error
import urllib.request

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=base + "/v1", api_key="sk-gold", max_retries=0)

models = [m.id for m in client.models.list()]
assert {"auto", "opt-125m", "opt-6.7b"} <= set(models), models
print("models", models)

r = client.completions.create(model="auto", prompt="Say hello", max_tokens=5,
                              extra_body={"task": "copa"})
assert r.object == "text_completion", r
assert r.choices[0].finish_reason == "length", r
assert r.usage.completion_tokens == 5, r.usage
assert len(r.choices[0].text.split()) == 5, r.choices[0].text
assert r.model.startswith("opt-"), r.model
print("completion", r.model, repr(r.choices[0].text))

r = client.chat.completions.create(model="opt-1.3b", max_tokens=4,
                                   messages=[{"role": "user", "content": "hi"}])
assert r.model == "opt-1.3b", r.model
assert r.choices[0].message.role == "assistant", r
assert len(r.choices[0].message.content.split()) == 4, r.choices[0].message
print("chat", repr(r.choices[0].message.content))

parts, finish, roles = [], None, set()
stream = client.chat.completions.create(model="auto", max_tokens=6, stream=True,
                                        messages=[{"role": "system", "content": "be brief"},
                                                  {"role": "user", "content": "stream please"}])
for chunk in stream:
    assert chunk.object == "chat.completion.chunk", chunk
    for c in chunk.choices:
        if c.delta.role:
            roles.add(c.delta.role)
        if c.delta.content:
            parts.append(c.delta.content)
        if c.finish_reason:
            finish = c.finish_reason
assert len(parts) == 6 and finish == "length" and roles == {"assistant"}, (parts, finish, roles)
print("chat stream", parts)

texts = []
for chunk in client.completions.create(model="opt-125m", prompt="count", max_tokens=3, stream=True):
    texts.extend(c.text for c in chunk.choices if c.text)
assert len(texts) == 3, texts
print("completion stream", texts)

try:
    client.completions.create(model="gpt-9", prompt="x")
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as e:
    assert e.status_code == 404 and e.code == "model_not_found", (e.status_code, e.code)
    print("unknown model", e.status_code, e.code)

try:
    client.completions.create(model="auto", prompt="x" * 40000)
    raise AssertionError("oversized prompt accepted")
except openai.BadRequestError as e:
    assert e.code == "context_length_exceeded", e.code
    print("oversized prompt", e.status_code, e.code)

try:
    openai.OpenAI(base_url=base + "/v1", api_key="sk-wrong", max_retries=0).completions.create(
        model="auto", prompt="x")
    raise AssertionError("unknown key accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401 and e.code == "invalid_api_key", (e.status_code, e.code)
    print("unknown key", e.status_code, e.code)


def raw(body, headers):
    req = urllib.request.Request(base + "/v1/completions", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


status, body = raw(b'{"model": "auto", "prompt": "x"}', {"Content-Type": "application/json"})
assert status == 401 and body["error"]["type"] == "invalid_request_error", (status, body)
assert set(body["error"]) == {"message", "type", "param", "code"}, body
print("missing key", status)

status, body = raw(b'{"model": "auto", "prompt": ', {"Authorization": "Bearer sk-gold"})
assert status == 400 and body["error"]["type"] == "invalid_request_error", (status, body)
print("malformed json", status)

print("ALL OK")
