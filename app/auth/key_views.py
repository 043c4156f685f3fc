"""The API keys page: create (the secret is shown once), list, revoke."""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from app import clock
from app.auth import api_keys, audit
from app.auth.principal import SCOPES
from app.errors import ApiError
from app.extensions import db

bp = Blueprint("api_keys_page", __name__, url_prefix="/settings/api-keys")


class ApiKeyForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    scopes = SelectMultipleField("Scopes", choices=list(SCOPES),
                                 validators=[DataRequired()],
                                 widget=ListWidget(prefix_label=False),
                                 option_widget=CheckboxInput())
    expires_in_days = IntegerField("Expires after (days, empty = never)",
                                   validators=[Optional(), NumberRange(1, 3650)])


class RevokeForm(FlaskForm):
    pass


@bp.route("", methods=["GET", "POST"])
@login_required
def index():
    form = ApiKeyForm()
    created_secret = None
    status = 200
    if form.validate_on_submit():
        expires = (clock.now() + timedelta(days=form.expires_in_days.data)
                   if form.expires_in_days.data else None)
        try:
            key, created_secret = api_keys.create_key(current_user, form.name.data,
                                                      form.scopes.data, expires)
        except ApiError as exc:
            form.name.errors.append(exc.message)
            status = 422
        else:
            audit.record("api_key_created", actor_user_id=current_user.id,
                         actor_label=current_user.email, target_type="api_key",
                         target_id=key.id, prefix=key.prefix)
            db.session.commit()
    elif form.is_submitted():
        status = 422
    keys = api_keys.list_keys(current_user.id)
    return render_template("auth/api_keys.html", form=form, keys=keys,
                           created_secret=created_secret, revoke_form=RevokeForm(),
                           last_used=api_keys.pending_last_used), status


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
