import { schedulerCases } from '@fulcrum/testkit';
import { describe, it } from 'vitest';
import sed from '../index.js';

describe('sed passes the @fulcrum/testkit scheduler conformance suite', () => {
  for (const c of schedulerCases(sed)) it(c.name, c.run);
});
