'use strict';

// Runs the Zapier app's real code (zapier-platform-core's app tester) against a live local
// server (test/live_server.py, started by run-tests.sh): connection test, then
// subscribe → event → delivery to our receiver → samples → unsubscribe → nothing more.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const zapier = require('zapier-platform-core');
const App = require('../index');

const appTester = zapier.createAppTester(App);
const live = JSON.parse(process.env.ALBEDO_LIVE); // what test/live_server.py seeded
const authData = { base_url: live.base_url, api_key: live.api_key };
const receiverPort = Number(process.env.ALBEDO_RECEIVER_PORT);
const received = [];
let receiver;

const emit = async (event, data) => {
  const response = await fetch(`${live.control_url}/emit`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ event, data }),
  });
  return response.json();
};

const waitFor = async (condition, what, timeoutMs = 20000) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
};

before(async () => {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      received.push({ path: req.url, headers: req.headers, body: JSON.parse(body) });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise((resolve) => receiver.listen(receiverPort, '127.0.0.1', resolve));
});

after(() => receiver.close());

test('the connection test calls GET /me with the API key', async () => {
  const me = await appTester(App.authentication.test, { authData });
  assert.equal(me.role, 'RESELLER');
});

test('a wrong API key fails the connection test', async () => {
  await assert.rejects(
    appTester(App.authentication.test, { authData: { ...authData, api_key: 'ak_wrong_key' } }));
});

test('subscribe, receive an event, list samples, unsubscribe', async () => {
  const trigger = App.triggers.license_created.operation;
  const subscription = await appTester(trigger.performSubscribe, {
    authData, targetUrl: `http://127.0.0.1:${receiverPort}/zap`,
  });
  assert.ok(subscription.id, 'the subscription has an id');
  assert.equal(subscription.event, 'license.created');

  const emitted = await emit('license.created', { license_id: 'zap-1', status: 'active' });
  assert.equal(emitted.deliveries, 1);
  await waitFor(() => received.length === 1, 'the delivery');
  assert.equal(received[0].path, '/zap');
  assert.equal(received[0].body.id, emitted.id);
  assert.ok(received[0].headers['webhook-id'].startsWith('msg_'));

  const items = await appTester(trigger.perform, { authData, cleanedRequest: received[0].body });
  assert.equal(items[0].data.license_id, 'zap-1');

  await emit('license.created', { license_id: 'zap-2', status: 'active' });
  await waitFor(() => received.length === 2, 'the second delivery');
  const samples = await appTester(trigger.performList, { authData });
  // Newest first; older license.created events (the Create license action's) may follow.
  assert.deepEqual(samples.slice(0, 2).map((s) => s.data.license_id), ['zap-2', 'zap-1']);
  assert.equal(new Set(samples.map((s) => s.id)).size, samples.length);

  await appTester(trigger.performUnsubscribe, { authData, subscribeData: subscription });
  const after = await emit('license.created', { license_id: 'zap-3', status: 'active' });
  assert.equal(after.deliveries, 0, 'nothing is owed to an unsubscribed Zap');
  // Unsubscribing twice is harmless (the hook is already gone).
  await appTester(trigger.performUnsubscribe, { authData, subscribeData: subscription });
});

test('every trigger subscribes to its own event type', async () => {
  for (const [key, trigger] of Object.entries(App.triggers)) {
    const subscription = await appTester(trigger.operation.performSubscribe, {
      authData, targetUrl: `http://127.0.0.1:${receiverPort}/${key}`,
    });
    assert.equal(subscription.event.replace('.', '_'), key);
    await appTester(trigger.operation.performUnsubscribe, { authData, subscribeData: subscription });
  }
});
