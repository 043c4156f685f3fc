'use strict';

const { base } = require('../authentication');

module.exports = {
  key: 'create_license',
  noun: 'License',
  display: { label: 'Create License', description: 'Issues a license key, optionally for a customer by email.' },
  operation: {
    inputFields: [
      { key: 'policy_id', label: 'Policy ID', required: true },
      { key: 'customer_email', label: 'Customer email', required: false },
      { key: 'name', label: 'Name', required: false },
    ],
    perform: async (z, bundle) => {
      const body = { policy_id: bundle.inputData.policy_id };
      if (bundle.inputData.customer_email) body.customer_email = bundle.inputData.customer_email;
      if (bundle.inputData.name) body.name = bundle.inputData.name;
      const response = await z.request({ url: `${base(bundle)}/licenses`, method: 'POST', body });
      return response.data;
    },
    sample: { id: 'l1', key: 'ACME-…', status: 'active' },
  },
};
