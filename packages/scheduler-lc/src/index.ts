export { lc as default, lc, lcPlan } from './lc.js';
