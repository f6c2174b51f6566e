export { sh as default, sh, DEFAULT_FIELDS, type ShOptions } from './sh.js';
export {
  sourceHashTable,
  DEFAULT_MAX_TABLE_SIZE,
  DEFAULT_FALLBACK,
  type SourceHashServer,
  type SourceHashOptions,
} from './source-hash.js';
