from marshmallow import Schema, fields


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
