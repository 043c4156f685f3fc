'use strict';

// One REST-hook trigger per main event. Zapier subscribes when a Zap is turned on
// (POST /hooks), receives each event as the body of a POST to its target URL, loads
// samples from GET /hooks/samples/{event} while the Zap is built, and unsubscribes
// (DELETE /hooks/{id}) when it is turned off.
const { base } = require('../authentication');

const EVENTS = [
  ['execution.succeeded', 'Execution', 'Agent Execution Succeeded',
    { execution_id: 'e1', agent_id: 'a1', output: 'Hello!', tokens: 812 }],
  ['execution.failed', 'Execution', 'Agent Execution Failed',
    { execution_id: 'e1', agent_id: 'a1', error: { code: 'provider_timeout', message: '…' } }],
  ['license.created', 'License', 'New License',
    { license_id: 'l1', key_prefix: 'ACME', status: 'active', expires_at: '2027-11-25T00:00:00Z' }],
  ['license.suspended', 'License', 'License Suspended', { license_id: 'l1', status: 'suspended' }],
  ['license.revoked', 'License', 'License Revoked', { license_id: 'l1', status: 'revoked' }],
  ['license.expired', 'License', 'License Expired', { license_id: 'l1', status: 'expired' }],
  ['license.validation_failed', 'License', 'License Validation Failed',
    { license_id: 'l1', reason: 'expired', code: 'EXPIRED', count: 3 }],
  ['machine.activated', 'Machine', 'Machine Activated',
    { machine_id: 'm1', license_id: 'l1', fingerprint: '9a4f0c1e7b2d' }],
  ['customer.created', 'Customer', 'New Customer',
    { user_id: 'u1', email: 'ann@example.com', name: 'Ann' }],
  ['subscription.updated', 'Subscription', 'Subscription Updated',
    { subscription_id: 's1', user_id: 'u1', plan_id: 'pro', status: 'active' }],
  ['quota.exceeded', 'Quota', 'Quota Exceeded',
    { user_id: 'u1', quota: 'executions_per_month', limit: 1000, used: 1001 }],
];

const makeTrigger = ([event, noun, label, sampleData]) => ({
  key: event.replace('.', '_'),
  noun,
  display: { label, description: `Triggers on the \`${event}\` event.` },
  operation: {
    type: 'hook',
    performSubscribe: async (z, bundle) => {
      const response = await z.request({
        url: `${base(bundle)}/hooks`,
        method: 'POST',
        body: { target_url: bundle.targetUrl, event },
      });
      return response.data; // { id, … } becomes bundle.subscribeData
    },
    performUnsubscribe: async (z, bundle) => {
      await z.request({
        url: `${base(bundle)}/hooks/${encodeURIComponent(bundle.subscribeData.id)}`,
        method: 'DELETE',
        skipThrowForStatus: true, // already gone (e.g. after a 410) is fine
      });
      return {};
    },
    perform: (z, bundle) => [bundle.cleanedRequest],
    performList: async (z, bundle) => {
      const response = await z.request({
        url: `${base(bundle)}/hooks/samples/${encodeURIComponent(event)}`,
      });
      return response.data;
    },
    sample: {
      id: 'evt_2b0c5f4e8d9a4c1b9f3e7a6d5c4b3a21', type: event, version: 1,
      timestamp: '2026-11-25T10:00:04Z', data: sampleData,
    },
  },
});

module.exports = Object.fromEntries(EVENTS.map((e) => {
  const trigger = makeTrigger(e);
  return [trigger.key, trigger];
}));
