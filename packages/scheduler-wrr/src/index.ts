export { wrr as default, wrr, wrrSequence, DEFAULT_MAX_SEQUENCE_LENGTH, type WrrOptions } from './wrr.js';
