'use strict';

const { base } = require('../authentication');

// POST /agents/{id}/executions, waiting up to 25 s for the answer (Prefer: wait), so the
// Zap can use the output in its next step; a slower run returns the queued execution.
module.exports = {
  key: 'run_agent',
  noun: 'Execution',
  display: { label: 'Run Agent', description: 'Runs an agent with an input and returns its answer.' },
  operation: {
    inputFields: [
      { key: 'agent_id', label: 'Agent ID', required: true },
      { key: 'input', label: 'Input', required: true, type: 'text' },
      { key: 'variables', label: 'Variables', dict: true, required: false },
    ],
    perform: async (z, bundle) => {
      const response = await z.request({
        url: `${base(bundle)}/agents/${encodeURIComponent(bundle.inputData.agent_id)}/executions`,
        method: 'POST',
        headers: { Prefer: 'wait=25' },
        body: { input: bundle.inputData.input, variables: bundle.inputData.variables || {} },
      });
      return response.data;
    },
    sample: { id: 'e1', agent_id: 'a1', status: 'succeeded', output: 'Hello!' },
  },
};
