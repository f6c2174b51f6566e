export { rr as default, rr, roundRobinSequence } from './rr.js';
