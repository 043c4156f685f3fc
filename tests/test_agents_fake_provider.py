"""The stand-in provider speaks real OpenAI: the official client and LangChain talk to it."""

import openai
import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from tests.fakes.openai_server import Step, start_fake_openai


@pytest.fixture
def fake():
    server = start_fake_openai()
    yield server
    server.close()


def test_openai_client_non_streaming_with_usage(fake):
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}])
    assert answer.choices[0].message.content == "Echo: hello there"
    assert answer.usage.completion_tokens == 3 and answer.usage.prompt_tokens > 0
    assert fake.headers[0]["authorization"] == "Bearer sk-test"


def test_openai_client_streaming_with_usage(fake):
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "one two"}], stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two"
    assert chunks[-1].usage.completion_tokens == 3


def test_injected_errors_reach_the_client_as_its_own_exceptions(fake):
    client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    for status, error in ((401, openai.AuthenticationError), (429, openai.RateLimitError),
                          (500, openai.InternalServerError), (400, openai.BadRequestError)):
        fake.script = [Step(status=status)]
        with pytest.raises(error):
            client.chat.completions.create(model="m", messages=[{"role": "user",
                                                                 "content": "x"}])


def test_langchain_chat_openai_streams_and_reports_usage(fake):
    llm = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test", base_url=fake.base_url,
                     max_retries=0, stream_usage=True)
    pieces = list(llm.stream([HumanMessage("stream me")]))
    total = pieces[0]
    for piece in pieces[1:]:
        total = total + piece
    assert total.content == "Echo: stream me"
    assert total.usage_metadata["output_tokens"] == 3
    answer = llm.invoke([HumanMessage("plain")])
    assert answer.content == "Echo: plain" and answer.usage_metadata["input_tokens"] > 0


def test_langchain_sees_tool_calls(fake):
    fake.script = [Step(tool_call=("http_post", {"payload": {"a": 1}}))]
    llm = ChatOpenAI(model="m", api_key="k", base_url=fake.base_url, max_retries=0)
    answer = llm.bind_tools([{"type": "function", "function": {
        "name": "http_post", "parameters": {"type": "object", "properties": {}}}}]).invoke(
        [HumanMessage("call it")])
    assert answer.tool_calls[0]["name"] == "http_post"
    assert answer.tool_calls[0]["args"] == {"payload": {"a": 1}}
    assert fake.requests[0]["tools"][0]["function"]["name"] == "http_post"
