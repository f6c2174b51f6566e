import {
  defineScheduler,
  HASH_FIELDS,
  MAX_PLAN_ENTRIES,
  type HashField,
  type HashPlan,
} from '@fulcrum/kernel';
import { DEFAULT_FALLBACK, DEFAULT_MAX_TABLE_SIZE, sourceHashTable } from './source-hash.js';

export interface ShOptions {
  fields: HashField[];
  fallback: boolean;
  maxTableSize: number;
}

export const DEFAULT_FIELDS: readonly HashField[] = ['source-address'];

export const sh = defineScheduler<ShOptions>({
  name: 'sh',
  kernel: '^0.1.0',
  description:
    'source hashing (IPVS sh): a client address always reaches the same server while membership is stable',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      fields: {
        type: 'array',
        items: { type: 'string', enum: [...HASH_FIELDS] },
        minItems: 1,
        uniqueItems: true,
        default: [...DEFAULT_FIELDS],
        description: 'connection fields hashed (IPVS sh hashes the source address; sh-port adds the port)',
      },
      fallback: {
        type: 'boolean',
        default: DEFAULT_FALLBACK,
        description:
          'keys of a server at weight 0 go to other servers (IPVS sh-fallback) instead of being refused',
      },
      maxTableSize: {
        type: 'integer',
        minimum: 256,
        maximum: MAX_PLAN_ENTRIES,
        default: DEFAULT_MAX_TABLE_SIZE,
        description: 'largest table built; beyond it weights are scaled down, every server keeping a slot',
      },
    },
  },
  create(_ctx, options) {
    const fields = [...(options.fields ?? DEFAULT_FIELDS)];
    const fallback = options.fallback ?? DEFAULT_FALLBACK;
    const maxTableSize = options.maxTableSize ?? DEFAULT_MAX_TABLE_SIZE;
    return {
      compile: (view): HashPlan => ({
        kind: 'hash',
        fields,
        table: sourceHashTable(view.realServers, { fallback, maxTableSize }),
      }),
    };
  },
});
