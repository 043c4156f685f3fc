'use strict';

const { version } = require('./package.json');
const { version: platformVersion } = require('zapier-platform-core');
const { authentication, beforeRequest, afterResponse } = require('./authentication');
const triggers = require('./triggers/events');
const runAgent = require('./creates/run_agent');
const createLicense = require('./creates/create_license');

module.exports = {
  version,
  platformVersion,
  authentication,
  beforeRequest,
  afterResponse,
  triggers,
  creates: {
    [runAgent.key]: runAgent,
    [createLicense.key]: createLicense,
  },
};
