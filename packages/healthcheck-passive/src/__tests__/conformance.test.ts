import { healthCheckCases } from '@fulcrum/testkit';
import { describe, it } from 'vitest';
import passive from '../index.js';

describe('passive passes the @fulcrum/testkit health-check conformance suite', () => {
  for (const c of healthCheckCases(passive)) it(c.name, c.run);
});
