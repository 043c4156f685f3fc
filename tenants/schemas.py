from marshmallow import Schema, fields, validate


class TenantBrandingSchema(Schema):
    """What any visitor of a tenant's domain may know about it: its public face."""

    slug = fields.String(metadata={"example": "acme"})
    kind = fields.String(metadata={"example": "reseller"})
    display_name = fields.String(metadata={"example": "Acme Agents"})
    logo_url = fields.String(allow_none=True)
    primary_color = fields.String(metadata={"example": "#e11d48"})
    accent_color = fields.String(metadata={"example": "#f59e0b"})
    support_email = fields.String(allow_none=True)
    base_url = fields.String(metadata={"example": "http://acme.localhost:5000"})


HEX = validate.Regexp(r"^#[0-9a-fA-F]{6}$", error="must be a hex colour such as #1a2b3c")


class BrandingUpdateSchema(Schema):
    display_name = fields.String(validate=validate.Length(1, 120))
    logo_url = fields.String(allow_none=True, validate=validate.Length(max=500))
    primary_color = fields.String(validate=HEX, metadata={"example": "#e11d48"})
    accent_color = fields.String(validate=HEX, metadata={"example": "#f59e0b"})
    support_email = fields.Email(allow_none=True)
    license_key_prefix = fields.String(validate=validate.Regexp(
        r"^[A-Z][A-Z0-9]{1,11}$", error="2-12 capital letters or digits, starting with a letter"))
    signup_enabled = fields.Boolean()


class ResellerCreateSchema(BrandingUpdateSchema):
    slug = fields.String(required=True, metadata={"example": "acme"})
    name = fields.String(required=True, validate=validate.Length(1, 120),
                         metadata={"example": "Acme Agents"})
    owner_email = fields.String(load_default=None, validate=validate.Length(1, 254), metadata={
        "example": "owner@acme.example",
        "description": "Emailed an invitation, in the reseller's branding, to choose a "
                       "password and sign in as the reseller's first staff member."})


LAST_CHECKED = {"description": "When DNS was last looked up for this domain (\"verify now\", "
                              "the background re-check of pending domains, or the platform's "
                              "check); null if never"}
LAST_CHECK_CODE = {"description": "What that lookup found instead of the record: `no_record`, "
                                  "`wrong_value`, `timeout` or `lookup_failed`; null when it "
                                  "verified the domain or none was made"}


class DomainSchema(Schema):
    id = fields.UUID(dump_only=True)
    hostname = fields.String(required=True, metadata={"example": "agents.acme.example"})
    is_primary = fields.Boolean(dump_only=True)
    verified = fields.Boolean(dump_only=True)
    verification_token = fields.String(dump_only=True)
    last_checked_at = fields.AwareDateTime(dump_only=True, allow_none=True, metadata=LAST_CHECKED)
    last_check_code = fields.String(dump_only=True, allow_none=True, metadata=LAST_CHECK_CODE)


class OwnDomainSchema(Schema):
    """One of the reseller's own custom domains, with the DNS record that proves it."""

    id = fields.UUID(dump_only=True)
    hostname = fields.String(metadata={"example": "agents.acme.example"})
    is_primary = fields.Boolean()
    verified = fields.Boolean()
    record_name = fields.Method("_record_name", metadata={
        "description": "The TXT record to publish", "example":
        "_domain-verification.agents.acme.example"})
    record_value = fields.String(attribute="verification_token",
                                 metadata={"description": "The value that record must hold"})
    last_checked_at = fields.AwareDateTime(allow_none=True, metadata=LAST_CHECKED)
    last_check_code = fields.String(allow_none=True, metadata=LAST_CHECK_CODE)
    last_check_problem = fields.Method("_last_problem", allow_none=True, metadata={
        "description": "The same, as a sentence to show; null with `last_check_code`"})

    def _record_name(self, domain) -> str:
        from tenants.verification import record_name

        hostname = domain["hostname"] if isinstance(domain, dict) else domain.hostname
        return record_name(hostname)

    def _last_problem(self, domain) -> str | None:
        from tenants.verification import last_problem

        if isinstance(domain, dict):  # "verify now"'s answer: that check is the last one
            return domain["problem"]
        return last_problem(domain)


class DomainCheckSchema(OwnDomainSchema):
    """A domain after "verify now": verified, or why not."""

    problem_code = fields.String(allow_none=True, metadata={
        "description": "Why it is not verified: `no_record`, `wrong_value`, `timeout` or "
                       "`lookup_failed`; null when verified"})
    problem = fields.String(allow_none=True, metadata={
        "description": "The same, as a sentence to show"})


class DomainCreateSchema(Schema):
    hostname = fields.String(required=True, metadata={"example": "agents.acme.example"})
    verified = fields.Boolean(load_default=False, metadata={
        "description": "Mark verified now (the operator checked DNS)."})
    primary = fields.Boolean(load_default=False)


class ResellerSchema(Schema):
    id = fields.UUID()
    slug = fields.String()
    name = fields.String()
    status = fields.String(metadata={"example": "active"})
    display_name = fields.String()
    primary_color = fields.String()
    accent_color = fields.String()
    support_email = fields.String(allow_none=True)
    license_key_prefix = fields.String()
    signup_enabled = fields.Boolean()
    base_url = fields.String()
    domains = fields.List(fields.Nested(DomainSchema))
    created_at = fields.AwareDateTime()


class TenantUserSchema(Schema):
    id = fields.UUID()
    email = fields.String()
    name = fields.String()
    role = fields.String()
    is_active = fields.Boolean()
    created_at = fields.AwareDateTime()
    last_login_at = fields.AwareDateTime(allow_none=True)
    banned_at = fields.AwareDateTime(allow_none=True)
