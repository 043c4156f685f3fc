"""Forms of the account pages. Lengths are capped here; password rules live in the service."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional


class SignUpForm(FlaskForm):
    name = StringField("Name", validators=[Optional(), Length(max=120)])
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])


class ResetPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField("Repeat the new password", validators=[
        DataRequired(), EqualTo("password", message="The two passwords differ.")])


class ChangePasswordForm(FlaskForm):
    # Optional: an account made through OAuth has no password yet (the service decides).
    current_password = PasswordField("Current password", validators=[Length(max=1024)])
    password = PasswordField("New password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField("Repeat the new password", validators=[
        DataRequired(), EqualTo("password", message="The two passwords differ.")])


class EmptyForm(FlaskForm):
    """A button that only needs its CSRF token (resend verification, unlink)."""


class SignUpSettingsForm(FlaskForm):
    signup_enabled = BooleanField("Customers may create their own accounts")


class OAuthAppForm(FlaskForm):
    """A reseller's own OAuth app; the secret is write-only (blank keeps the stored one)."""

    client_id = StringField("Client ID", validators=[DataRequired(), Length(max=255)])
    client_secret = PasswordField("Client secret", validators=[Optional(), Length(max=500)])
    enabled = BooleanField("Offer this sign-in")
