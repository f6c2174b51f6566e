export { mh as default, mh, DEFAULT_FIELDS, type MhOptions } from './mh.js';
export {
  maglevTable,
  maglevPopulate,
  maglevPermutation,
  maglevTurns,
  weightBits,
  isPrime,
  DEFAULT_TABLE_SIZE,
  DEFAULT_FALLBACK,
  type MaglevServer,
  type MaglevOptions,
} from './maglev.js';
