'use strict';

const { base } = require('../authentication');

// POST /agents/{id}/executions, waiting up to 25 s for the answer (Prefer: wait), so the
// Zap can use the output in its next step; a slower run returns the queued execution (202).
// A run that ended without an answer (failed, timed out, cancelled) halts the Zap with the
// execution's error rather than handing an empty output to the next step.
const ENDED_WITHOUT_ANSWER = ['failed', 'timed_out', 'cancelled'];
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
      const execution = response.data;
      if (ENDED_WITHOUT_ANSWER.includes(execution.status)) {
        const error = execution.error || {};
        throw new z.errors.Error(
          `The agent run ${execution.status.replace('_', ' ')}: ${error.message || 'no answer'}`,
          error.code || execution.status);
      }
      return execution;
    },
    sample: { id: 'e1', agent_id: 'a1', status: 'succeeded', output: 'Hello!' },
  },
};
