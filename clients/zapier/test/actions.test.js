'use strict';

// The actions "Run agent" and "Create license", run through zapier-platform-core's app tester
// against the live local server (test/live_server.py, started by run-tests.sh): the real API,
// a real worker running the agent, the stand-in OpenAI server as its provider, and the public
// license validation endpoint judging the key the action got.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { randomUUID } = require('node:crypto');
const zapier = require('zapier-platform-core');
const App = require('../index');

const appTester = zapier.createAppTester(App);
const live = JSON.parse(process.env.ALBEDO_LIVE); // what test/live_server.py seeded
const authData = { base_url: live.base_url, api_key: live.api_key };
const runAgent = App.creates.run_agent.operation.perform;
const createLicense = App.creates.create_license.operation.perform;
// docs/license-keys.md: PREFIX "-" Crockford base32 of 93 bytes (149 characters).
const KEY_FORMAT = new RegExp(`^${live.key_prefix}-[0-9A-HJKMNP-TV-Z]{149}$`);

const control = async (path, body) => {
  const response = await fetch(`${live.control_url}${path}`, body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  assert.equal(response.status, 200);
  return response.json();
};

const api = async (method, path, body) => {
  const response = await fetch(`${live.base_url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${live.api_key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
};

// A z.errors.Error carries {message, code, status} as its message (what Zapier shows).
const zapError = (expected) => (error) => {
  assert.equal(error.name, 'AppError', `expected a z.errors.Error, got ${error.stack}`);
  assert.deepEqual(JSON.parse(error.message), expected);
  return true;
};

test('Run agent waits for the execution and returns the provider\'s answer', async () => {
  const before = (await control('/provider')).requests.length;
  const input = 'Which plan fits a team of five?';
  const execution = await appTester(runAgent, {
    authData, inputData: { agent_id: live.agent_id, input },
  });

  assert.equal(execution.status, 'succeeded');
  assert.equal(execution.agent_id, live.agent_id);
  assert.equal(execution.output, `Echo: ${input}`); // the stand-in echoes the last user message
  assert.equal(execution.error, null);
  assert.ok(execution.usage.completion_tokens > 0, 'the provider\'s usage is recorded');

  // The run went to the stand-in with the published version's model and system prompt.
  const requests = (await control('/provider')).requests.slice(before);
  assert.equal(requests.length, 1);
  assert.equal(requests[0].model, 'gpt-4o-mini');
  assert.deepEqual(requests[0].messages.map((m) => [m.role, m.content]), [
    ['system', 'You help Acme customers.'], ['user', input],
  ]);
  // What the action returned is the stored execution.
  const stored = await api('GET', `/executions/${execution.id}`);
  assert.equal(stored.status, 200);
  assert.equal(stored.body.output, execution.output);
});

test('Run agent with an unknown agent throws the API\'s error', async () => {
  await assert.rejects(
    appTester(runAgent, { authData, inputData: { agent_id: randomUUID(), input: 'Hello' } }),
    zapError({ message: 'No such agent.', code: 'agent_not_found', status: 404 }));
});

test('Run agent halts the Zap with the execution\'s error when the provider fails', async () => {
  await control('/provider', { status: 401 }); // the provider refuses the platform's key
  try {
    await assert.rejects(
      appTester(runAgent, { authData, inputData: { agent_id: live.agent_id, input: 'Hello' } }),
      zapError({
        message: 'The agent run failed: The AI provider refused the API key; check the '
          + 'provider key in the settings.',
        code: 'provider_auth_failed',
      }));
  } finally {
    await control('/provider', {}); // the echo again, for whatever runs next
  }
  const failed = await api('GET', `/executions?agent_id=${live.agent_id}&status=failed`);
  assert.equal(failed.body.items.length, 1, 'the failed run is the stored execution');
});

test('Create license issues a key that the validation endpoint answers VALID', async () => {
  const license = await appTester(createLicense, {
    authData,
    inputData: { policy_id: live.policy_id, customer_email: 'ann@customer.example', name: 'Zap' },
  });

  assert.equal(license.status, 'active');
  assert.equal(license.policy_id, live.policy_id);
  assert.equal(license.customer_email, 'ann@customer.example');
  assert.equal(license.name, 'Zap');
  assert.match(license.key, KEY_FORMAT);

  const validation = await fetch(`${live.base_url}/licenses/validate`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ key: license.key, product: live.product_code, nonce: 'zap-1' }),
  });
  assert.equal(validation.status, 200);
  const answer = await validation.json();
  assert.equal(answer.code, 'VALID');
  assert.equal(answer.valid, true);
  assert.equal(answer.license.id, license.id);
  assert.equal(answer.nonce, 'zap-1');

  // The endpoint really checks the key: one changed character of the signature fails it.
  const at = license.key.length - 20;
  const tampered = license.key.slice(0, at) + (license.key[at] === '0' ? '1' : '0')
    + license.key.slice(at + 1);
  const refused = await (await fetch(`${live.base_url}/licenses/validate`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ key: tampered }),
  })).json();
  assert.equal(refused.code, 'BAD_SIGNATURE');
  assert.equal(refused.valid, false);
});

test('Create license with an unknown policy throws the API\'s error', async () => {
  await assert.rejects(
    appTester(createLicense, { authData, inputData: { policy_id: randomUUID() } }),
    zapError({ message: 'No policy has this id.', code: 'policy_not_found', status: 404 }));
});
