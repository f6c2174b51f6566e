import { schedulerCases } from '@fulcrum/testkit';
import { describe, it } from 'vitest';
import mh from '../index.js';

describe('mh passes the @fulcrum/testkit scheduler conformance suite', () => {
  for (const c of schedulerCases(mh)) it(c.name, c.run);
});
