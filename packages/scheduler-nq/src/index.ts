export { nq as default, nq, nqPlan } from './nq.js';
