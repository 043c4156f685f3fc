'use strict';

// API key auth. The base URL is the reseller's own domain (white-label: every reseller
// serves the API on its domain), so the user pastes it with the key.
const base = (bundle) => String(bundle.authData.base_url || '').replace(/\/+$/, '');

// Every non-2xx answer of the API is the one error envelope, {"error": {"code", "message",
// …}}: the Zap's user sees its message and code (a z.errors.Error) instead of the raw
// response. A request with skipThrowForStatus handles its own errors; a 429 never gets here
// (zapier-platform-core turns it into its ThrottledError, with the Retry-After delay, first);
// an answer that is not an envelope (a proxy's error page) falls through to the platform's
// ResponseError.
const throwForEnvelope = (response, z) => {
  if (response.status < 400 || response.skipThrowForStatus) return response;
  const error = response.data && response.data.error;
  if (error && typeof error.message === 'string') {
    throw new z.errors.Error(error.message, error.code, response.status);
  }
  return response;
};

module.exports = {
  base,
  afterResponse: [throwForEnvelope],
  authentication: {
    type: 'custom',
    fields: [
      {
        key: 'base_url',
        label: 'API base URL',
        required: true,
        type: 'string',
        helpText: 'Your dashboard address followed by /api/v1, e.g. `https://agents.example.com/api/v1`.',
      },
      {
        key: 'api_key',
        label: 'API key',
        required: true,
        type: 'password',
        helpText: 'Create one under Settings → API keys with the `webhooks:manage` scope ' +
          '(add `agents:execute` and `licenses:write` for the actions).',
      },
    ],
    // GET /me is the connection test.
    test: async (z, bundle) => {
      const response = await z.request({ url: `${base(bundle)}/me` });
      return response.data;
    },
    connectionLabel: (z, bundle) => bundle.inputData.email || bundle.inputData.user_id || 'API key',
  },
  beforeRequest: [
    (request, z, bundle) => {
      if (bundle.authData && bundle.authData.api_key) {
        request.headers.Authorization = `Bearer ${bundle.authData.api_key}`;
      }
      request.headers.Accept = 'application/json';
      return request;
    },
  ],
};
