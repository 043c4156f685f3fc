"""The baseline for bench/license_validation.py: a bare Flask app answering a JSON hello."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.post("/api/v1/licenses/validate")
def hello():
    return jsonify(hello="world")
