"""The API keys page: create (the secret is shown once), list, revoke."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    ValidationError,
)
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from app import clock
from app.auth import api_keys, audit
from app.auth.principal import SCOPES
from app.errors import ApiError
from app.extensions import db

bp = Blueprint("api_keys_page", __name__, url_prefix="/settings/api-keys")


# What each scope lets a key do, in product words (the value stays the API's scope name).
SCOPE_LABELS = {
    "agents:read": "Read agents and executions", "agents:write": "Create and edit agents",
    "agents:execute": "Run agents", "licenses:read": "Read licenses",
    "licenses:write": "Issue and change licenses", "webhooks:manage": "Manage webhooks",
    "billing:read": "Read billing", "billing:write": "Change billing",
}
PRESETS = (("Read only", tuple(s for s in SCOPES if s.endswith(":read"))),
           ("Execute only", ("agents:execute",)),
           ("Full access", tuple(SCOPES)))
# SelectChoice: WTForms 3.3 deprecates (value, label) tuples as choices.
EXPIRY_CHOICES = [SelectChoice("", "Never"), SelectChoice("7", "In 7 days"),
                  SelectChoice("30", "In 30 days"), SelectChoice("90", "In 90 days"),
                  SelectChoice("365", "In a year"), SelectChoice("date", "On a date…")]
MAX_EXPIRY_DAYS = 3650


class ApiKeyForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(message="Give the key a name."),
                                           Length(max=120)])
    # Optional boxes, one scope is enough: the "at least one" rule is the form's, not the
    # browser's (a required attribute on every box forced all eight).
    scopes = SelectMultipleField("What the key may do",
                                 choices=[SelectChoice(s, f"{SCOPE_LABELS.get(s, s)} ({s})")
                                          for s in SCOPES],
                                 widget=ListWidget(prefix_label=False),
                                 option_widget=CheckboxInput())
    expires = SelectField("Expires", choices=EXPIRY_CHOICES, default="")
    expires_on = DateField("Expiry date", validators=[Optional()])

    def validate_scopes(self, field) -> None:
        if not field.data:
            raise ValidationError("Choose at least one thing the key may do.")

    def validate_expires_on(self, field) -> None:
        if self.expires.data != "date":
            return
        today = clock.now().date()
        if field.data is None:
            raise ValidationError("Pick the day the key stops working.")
        if field.data <= today:
            raise ValidationError("Pick a day after today.")
        if field.data > today + timedelta(days=MAX_EXPIRY_DAYS):
            raise ValidationError("Pick a day within ten years.")

    def expires_at(self):
        if self.expires.data == "date" and self.expires_on.data:
            return datetime.combine(self.expires_on.data, time.max, tzinfo=UTC)
        if self.expires.data.isdigit():
            return clock.now() + timedelta(days=int(self.expires.data))
        return None


class RevokeForm(FlaskForm):
    pass


@bp.route("", methods=["GET", "POST"])
@login_required
def index():
    form = ApiKeyForm()
    created_secret = None
    status = 200
    if form.validate_on_submit():
        try:
            key, created_secret = api_keys.create_key(current_user, form.name.data,
                                                      form.scopes.data, form.expires_at())
        except ApiError as exc:
            db.session.rollback()
            form.form_errors.append(exc.message)
            status = 422
        else:
            audit.record("api_key_created", actor_user_id=current_user.id,
                         actor_label=current_user.email, target_type="api_key",
                         target_id=key.id, prefix=key.prefix)
            db.session.commit()
            form = ApiKeyForm(formdata=None)  # a fresh form under the new key
    elif form.is_submitted():
        status = 422
    keys = api_keys.list_keys(current_user.id)
    return render_template("auth/api_keys.html", form=form, keys=keys,
                           created_secret=created_secret, revoke_form=RevokeForm(),
                           last_used=api_keys.pending_last_used, presets=PRESETS,
                           now=clock.now()), status


@bp.post("/<uuid:key_id>/revoke")
@login_required
def revoke(key_id: uuid.UUID):
    if not RevokeForm().validate_on_submit():
        abort(400)
    key = api_keys.get_key(key_id, current_user.id)
    if key is None:
        abort(404)
    api_keys.revoke_key(key)
    audit.record("api_key_revoked", actor_user_id=current_user.id,
                 actor_label=current_user.email, target_type="api_key", target_id=key.id,
                 prefix=key.prefix)
    db.session.commit()
    flash(f"Revoked {key.prefix}.")
    return redirect(url_for(".index"))
