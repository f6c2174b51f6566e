import { schedulerCases } from '@fulcrum/testkit';
import { describe, it } from 'vitest';
import nq from '../index.js';

describe('nq passes the @fulcrum/testkit scheduler conformance suite', () => {
  for (const c of schedulerCases(nq)) it(c.name, c.run);
});
