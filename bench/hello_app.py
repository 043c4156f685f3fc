"""The baseline for the gunicorn benchmarks: a bare Flask app answering a JSON hello.

It answers the license validation path (POST, bench/license_validation.py) and any GET
(bench/api_pipeline.py), so each bench loads its baseline with the very request it sends the
app.
"""

from flask import Flask, jsonify

app = Flask(__name__)


@app.post("/api/v1/licenses/validate")
def hello():
    return jsonify(hello="world")


@app.get("/<path:anything>")
def hello_get(anything: str):
    return jsonify(hello="world")
