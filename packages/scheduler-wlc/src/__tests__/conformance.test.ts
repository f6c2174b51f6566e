import { schedulerCases } from '@fulcrum/testkit';
import { describe, it } from 'vitest';
import wlc from '../index.js';

describe('wlc passes the @fulcrum/testkit scheduler conformance suite', () => {
  for (const c of schedulerCases(wlc)) it(c.name, c.run);
});
