import {
  ConfigError,
  defineScheduler,
  HASH_FIELDS,
  MAX_PLAN_ENTRIES,
  type HashField,
  type HashPlan,
} from '@fulcrum/kernel';
import { DEFAULT_FALLBACK, DEFAULT_TABLE_SIZE, isPrime, maglevTable } from './maglev.js';

export interface MhOptions {
  tableSize: number;
  fields: HashField[];
  fallback: boolean;
}

export const DEFAULT_FIELDS: readonly HashField[] = ['source-address'];

export const mh = defineScheduler<MhOptions>({
  name: 'mh',
  kernel: '^0.1.0',
  description:
    'Maglev consistent hashing (NSDI 2016) with IPVS mh weights: a key moves only when its server changes',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      tableSize: {
        type: 'integer',
        minimum: 7,
        maximum: MAX_PLAN_ENTRIES,
        default: DEFAULT_TABLE_SIZE,
        description: 'M, the number of slots: a prime, best at least 100 × the number of servers',
      },
      fields: {
        type: 'array',
        items: { type: 'string', enum: [...HASH_FIELDS] },
        minItems: 1,
        uniqueItems: true,
        default: [...DEFAULT_FIELDS],
        description:
          'connection fields hashed to a slot (IPVS mh hashes the source address; mh-port adds the port)',
      },
      fallback: {
        type: 'boolean',
        default: DEFAULT_FALLBACK,
        description:
          'keys of a server at weight 0 go to other servers (IPVS mh-fallback) instead of being refused',
      },
    },
  },
  create(ctx, options) {
    const tableSize = options.tableSize ?? DEFAULT_TABLE_SIZE;
    if (!isPrime(tableSize)) {
      throw new ConfigError([
        {
          path: `${ctx.configPath}.options.tableSize`,
          message: `must be a prime number (Maglev's permutations need it), such as 251, 4093, 65537 or 131071; ${tableSize} is not`,
        },
      ]);
    }
    const fields = [...(options.fields ?? DEFAULT_FIELDS)];
    const fallback = options.fallback ?? DEFAULT_FALLBACK;
    return {
      compile: (view): HashPlan => ({
        kind: 'hash',
        fields,
        table: maglevTable(view.realServers, { tableSize, fallback }),
      }),
    };
  },
});
