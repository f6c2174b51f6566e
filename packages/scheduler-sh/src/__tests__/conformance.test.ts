import { schedulerCases } from '@fulcrum/testkit';
import { describe, it } from 'vitest';
import sh from '../index.js';

describe('sh passes the @fulcrum/testkit scheduler conformance suite', () => {
  for (const c of schedulerCases(sh)) it(c.name, c.run);
});
