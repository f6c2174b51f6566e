import { schedulerCases } from '@fulcrum/testkit';
import { describe, it } from 'vitest';
import lc from '../index.js';

describe('lc passes the @fulcrum/testkit scheduler conformance suite', () => {
  for (const c of schedulerCases(lc)) it(c.name, c.run);
});
