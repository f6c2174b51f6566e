import { schedulerCases } from '@fulcrum/testkit';
import { describe, it } from 'vitest';
import rr from '../index.js';

describe('rr passes the @fulcrum/testkit scheduler conformance suite', () => {
  for (const c of schedulerCases(rr)) it(c.name, c.run);
});
