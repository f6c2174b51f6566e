import { schedulerCases } from '@fulcrum/testkit';
import { describe, it } from 'vitest';
import wrr from '../index.js';

describe('wrr passes the @fulcrum/testkit scheduler conformance suite', () => {
  for (const c of schedulerCases(wrr)) it(c.name, c.run);
});
