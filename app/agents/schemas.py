"""Marshmallow schemas for the agents API (the OpenAPI document is generated from them)."""

from __future__ import annotations

from marshmallow import Schema, fields, post_dump, validate

from app.agents import customer_view
from app.agents.models import EXECUTION_STATUSES
from app.agents.usage import DIMENSIONS
from app.agents.usage import MAX_DAYS as MAX_USAGE_DAYS
from app.api.pagination import CursorArgsSchema
from app.api.serialization import FastDumpSchema


class VariableSchema(Schema):
    name = fields.String(required=True)
    type = fields.String(load_default="string",
                         validate=validate.OneOf(["string", "integer", "number", "boolean"]))
    default = fields.Raw(allow_none=True, load_default=None)
    required = fields.Boolean()


class ToolSchema(Schema):
    type = fields.String(load_default="http", validate=validate.OneOf(["http"]))
    name = fields.String(required=True)
    url = fields.String(required=True)
    description = fields.String(load_default="")


class VersionInSchema(Schema):
    model = fields.String(load_default=None, validate=validate.Length(1, 100), metadata={
        "description": "The provider's model (reseller staff; required for them). A "
                       "customer's agent keeps its model: a customer's value is ignored."})
    system_prompt = fields.String(load_default="", validate=validate.Length(max=50_000))
    variables = fields.List(fields.Nested(VariableSchema), load_default=list)
    temperature = fields.Float(load_default=0.7, validate=validate.Range(0, 2))
    max_output_tokens = fields.Integer(load_default=1024, validate=validate.Range(1, 128_000))
    tools = fields.List(fields.Nested(ToolSchema), load_default=list)


class VersionSchema(VersionInSchema):
    id = fields.UUID(dump_only=True)
    number = fields.Integer(dump_only=True)
    created_at = fields.DateTime(dump_only=True)

    @post_dump
    def _for_customers(self, data, **_kwargs):
        # A customer reads its agent's settings, never the provider's model.
        return customer_view.strip_version(data)


class AgentInSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 120))
    slug = fields.String(load_default=None, validate=validate.Length(1, 64))
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    version = fields.Nested(VersionInSchema, load_default=None, metadata={
        "description": "The first version; it is published at once."})


class AgentPatchSchema(Schema):
    name = fields.String(validate=validate.Length(1, 120))
    description = fields.String(validate=validate.Length(max=5000))
    status = fields.String(validate=validate.OneOf(["active", "archived"]))


class AgentSchema(FastDumpSchema):
    id = fields.UUID(dump_only=True)
    name = fields.String()
    slug = fields.String()
    description = fields.String()
    status = fields.String()
    is_template = fields.Boolean()
    owner_id = fields.UUID()
    published_version = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class PublishSchema(Schema):
    version = fields.Integer(required=True, validate=validate.Range(min=1, max=2**31 - 1))


class ExecutionInSchema(Schema):
    input = fields.String(required=True)
    variables = fields.Dict(keys=fields.String(), load_default=dict)
    conversation_id = fields.UUID(load_default=None)


class ExecutionSchema(Schema):
    id = fields.UUID()
    agent_id = fields.UUID()
    version = fields.Integer(attribute="version_number")
    model = fields.String(metadata={"description": "The provider's model (resellers only)."})
    conversation_id = fields.UUID(allow_none=True)
    status = fields.String()
    input = fields.String()
    variables = fields.Dict()
    output = fields.String()
    error = fields.Method("_error", allow_none=True)
    usage = fields.Method("_usage")
    timings = fields.Method("_timings")
    caller = fields.Method("_caller")
    source = fields.String()
    attempts = fields.Integer()
    idempotency_key = fields.String(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    first_token_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)

    @post_dump
    def _for_customers(self, data, **_kwargs):
        # A customer's answer names the agent, not the provider's model or cost.
        return customer_view.strip_execution(data)

    def _error(self, execution):
        if not execution.error_code:
            return None
        return {"code": execution.error_code, "message": execution.error_message}

    def _usage(self, execution):
        return {"prompt_tokens": execution.prompt_tokens,
                "completion_tokens": execution.completion_tokens,
                "total_tokens": execution.prompt_tokens + execution.completion_tokens,
                "cost_micros": execution.cost_micros, "currency": execution.currency}

    def _timings(self, execution):
        return {"queue_wait_ms": execution.queue_wait_ms, "run_ms": execution.run_ms}

    def _caller(self, execution):
        return {"user_id": str(execution.caller_user_id),
                "api_key_id": str(execution.api_key_id) if execution.api_key_id else None,
                "license_id": str(execution.license_id) if execution.license_id else None}


class ExecutionListArgsSchema(CursorArgsSchema):
    agent_id = fields.UUID(load_default=None)
    status = fields.String(load_default=None, validate=validate.OneOf(EXECUTION_STATUSES))
    since = fields.AwareDateTime(load_default=None, default_timezone=None)
    until = fields.AwareDateTime(load_default=None, default_timezone=None)


class UsageArgsSchema(Schema):
    group_by = fields.String(load_default="tenant", validate=validate.OneOf(
        list(DIMENSIONS)), metadata={
        "description": "Totals per day for the whole tenant, or per customer, API key, "
                       "license or agent (a customer only ever sees its own executions)."})
    days = fields.Integer(load_default=30, validate=validate.Range(1, MAX_USAGE_DAYS),
                          metadata={"description": "The last N UTC days, today included."})
    agent_id = fields.UUID(load_default=None, metadata={
        "description": "Only this agent's executions (404 if you cannot see the agent)."})
    customer_id = fields.UUID(load_default=None, metadata={
        "description": "Only this customer's executions (resellers; a customer may pass its "
                       "own id). 404 for anyone else."})


class UsageTotalsSchema(Schema):
    executions = fields.Integer()
    prompt_tokens = fields.Integer()
    completion_tokens = fields.Integer()
    total_tokens = fields.Integer()
    cost_micros = fields.Integer(metadata={
        "description": "Millionths of the currency unit; resellers only (a customer's answer "
                       "has no cost)."})


class UsageDaySchema(UsageTotalsSchema):
    day = fields.Date()
    key = fields.String(allow_none=True, metadata={
        "description": "The customer's user id, API key id, license id or agent id the row "
                       "totals; null for group_by=tenant (and for executions without one)."})


class UsageSchema(Schema):
    group_by = fields.String()
    days = fields.Integer()
    since = fields.Date(metadata={"description": "The first UTC day of the window."})
    until = fields.Date(metadata={"description": "The last UTC day of the window (today)."})
    currency = fields.String()
    items = fields.List(fields.Nested(UsageDaySchema), metadata={
        "description": "One row per day (and key) with executions, oldest first."})
    totals = fields.Nested(UsageTotalsSchema, metadata={"description": "The whole window."})

    @post_dump
    def _for_customers(self, data, **_kwargs):
        # Costs are what the provider charged the reseller: not shown to its customers.
        return customer_view.strip_usage(data)


class ConversationListArgsSchema(CursorArgsSchema):
    agent_id = fields.UUID(load_default=None, metadata={"description": "Only this agent's."})


class ConversationSchema(Schema):
    id = fields.UUID()
    agent_id = fields.UUID()
    user_id = fields.UUID(metadata={"description": "The customer the thread belongs to."})
    title = fields.String(metadata={"description": "The start of its first input."})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class MessageSchema(Schema):
    id = fields.UUID()
    role = fields.String(metadata={"description": "user or assistant"})
    content = fields.String()
    execution_id = fields.UUID(allow_none=True, metadata={
        "description": "The execution of this turn (null for history a client sent in)."})
    created_at = fields.DateTime()


class ConversationDetailSchema(ConversationSchema):
    messages = fields.List(fields.Nested(MessageSchema), metadata={
        "description": "Every message, oldest first."})


class ProviderInSchema(Schema):
    api_key = fields.String(load_default=None, validate=validate.Length(max=500), metadata={
        "description": "Your OpenAI (or OpenAI-compatible) key. Omit it to keep the stored "
                       "key and change only the base URL."})
    base_url = fields.String(load_default=None, allow_none=True,
                             validate=validate.Length(max=500), metadata={
        "description": "An OpenAI-compatible server, e.g. https://api.openai.com/v1 (null: "
                       "the platform's). In production it must resolve to public addresses."})


class ProviderSchema(Schema):
    configured = fields.Boolean(metadata={"description": "Whether your own key is set."})
    key_last4 = fields.String(allow_none=True, metadata={
        "description": "The key's last four characters; the key itself is never returned."})
    base_url = fields.String(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)
    platform_provider = fields.Boolean(metadata={
        "description": "Whether executions still run on the platform's provider without "
                       "your own key (if not, they answer provider_not_configured)."})
